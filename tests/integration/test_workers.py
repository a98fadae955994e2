"""`gateway serve --workers 2`: two processes share the port, each other's links, a
SIGTERM's grace, and a dead one is replaced."""

from __future__ import annotations

import asyncio
import functools
import inspect
import os
import queue
import re
import signal
import subprocess
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import psutil
import pytest
from aiohttp import ClientSession, TCPConnector
from gunicorn.arbiter import Arbiter
from yarl import URL

from gateway.api.prefork import remember_early_signals, stop_if_stopped_early
from tests.conftest import basic_auth
from tests.media import write_noisy_video
from tests.processes import Served, ok, serving

# The pid each access line carries, and the route and status it names.
ACCESS = re.compile(r'\[(\d+)\] aiohttp\.access \S+ "(\S+) (\S+)" (\d+)')


def access_lines(served: Served) -> list[tuple[int, str, str, int]]:
    return [
        (int(pid), method, route, int(status))
        for pid, method, route, status in ACCESS.findall("".join(served.output))
    ]


def workers_of(served: Served) -> set[int]:
    return {child.pid for child in psutil.Process(served.pid).children()}


def replaced(served: Served, killed: int) -> bool:
    # One look at the children: two looks could see the killed one, then not yet its
    # replacement.
    workers = workers_of(served)
    return len(workers) == 2 and killed not in workers


async def until(condition: Any, what: str, seconds: float = 20.0) -> None:
    for _ in range(int(seconds * 10)):
        if await asyncio.to_thread(condition):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"not within {seconds}s: {what}")


async def line_after(served: Served, seen: int) -> tuple[int, str, str, int]:
    """The access line logged after the first `seen`, once it is there."""
    await until(lambda: len(access_lines(served)) > seen, "the request's access line")
    return access_lines(served)[seen]


@pytest.fixture
def recording(env: dict[str, str], media_files: dict[Any, Path]) -> dict[str, Any]:
    account = ok(env, "accounts", "create")
    path = next(iter(media_files.values()))
    recording = ok(env, "ingest", str(path), "--account", account["account_sid"])
    return {**recording, "auth": basic_auth(account["account_sid"], account["auth_token"])}


async def status_of(http: ClientSession, url: str, headers: dict[str, str]) -> int:
    async with http.get(url, headers=headers) as response:
        await response.read()
        return response.status


def fresh_connections() -> ClientSession:
    # A new connection per request, so the kernel hands each to whichever worker accepts.
    return ClientSession(connector=TCPConnector(force_close=True, limit=32))


def local(served: Served, link: str) -> str:
    # Links name GATEWAY_PUBLIC_URL; the test reaches this process directly.
    return f"{served.base_url}{URL(link).raw_path_qs}"


async def test_both_workers_take_requests_and_serve_each_others_links(
    env: dict[str, str], recording: dict[str, Any], media_files: dict[Any, Path]
) -> None:
    media = next(iter(media_files.values())).read_bytes()
    with serving(env, "--workers", "2") as served:
        await until(lambda: len(workers_of(served)) == 2, "two workers")
        url = f"{served.base_url}/v1/Recordings/{recording['sid']}"
        async with fresh_connections() as http:
            statuses = await asyncio.gather(
                *(status_of(http, url, recording["auth"]) for _ in range(300))
            )
            assert set(statuses) == {200}
            await until(lambda: len(access_lines(served)) >= 300, "300 access lines")
            pids = {pid for pid, *_ in access_lines(served)}
            assert pids == workers_of(served), "one worker took every request"

            async with http.get(
                f"{url}/Media", headers=recording["auth"], allow_redirects=False
            ) as issued:
                link = local(served, (await issued.json())["redirect_to"])
            issuer, _, route, _ = await line_after(served, 300)
            assert route == "/v1/Recordings/{sid}/Media"
            for _ in range(200):
                seen = len(access_lines(served))
                async with http.get(link) as response:
                    assert response.status == 200
                    assert await response.read() == media
                server, _, route, status = await line_after(served, seen)
                assert (route, status) == ("/media/{token}", 200)
                if server != issuer:
                    break
            else:
                raise AssertionError("no download reached the worker that did not issue it")


async def test_sigterm_lets_a_download_in_flight_finish_on_its_worker(
    env: dict[str, str], recording: dict[str, Any], tmp_path: Path
) -> None:
    path = tmp_path / "long.mkv"
    # Well past what socket buffers hold, so the download is still being sent.
    await asyncio.to_thread(write_noisy_video, path, 10.0, bitrate="16M")
    media = await asyncio.to_thread(path.read_bytes)
    account_sid = recording["account_sid"]
    long = await asyncio.to_thread(ok, env, "ingest", str(path), "--account", account_sid)
    with serving(env, "--workers", "2") as served:
        async with (
            ClientSession(headers=recording["auth"]) as http,
            http.get(
                f"{served.base_url}/v1/Recordings/{long['sid']}/Media", allow_redirects=False
            ) as response,
        ):
            link = URL((await response.json())["redirect_to"])
        server = URL(served.base_url)
        reader, writer = await asyncio.open_connection(server.host, server.port)
        writer.write(f"GET {link.raw_path_qs} HTTP/1.1\r\nHost: {link.host}\r\n\r\n".encode())
        assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200")
        body = await reader.readexactly(64 * 1024)

        served.process.send_signal(signal.SIGTERM)
        await asyncio.sleep(1.5)  # a slow client, well within the grace
        assert served.process.poll() is None
        body += await reader.read()  # the worker closes once it has sent all it will
        writer.close()
        assert body == media
        try:
            code = await asyncio.to_thread(served.process.wait, 20)
        except subprocess.TimeoutExpired:
            code = None
        assert code == 0, "".join(served.output[-60:])


async def test_a_worker_killed_is_replaced_and_the_service_keeps_answering(
    env: dict[str, str], recording: dict[str, Any]
) -> None:
    with serving(env, "--workers", "2") as served:
        await until(lambda: len(workers_of(served)) == 2, "two workers")
        before = workers_of(served)
        killed = min(before)
        os.kill(killed, signal.SIGKILL)
        url = f"{served.base_url}/v1/Recordings/{recording['sid']}"
        async with fresh_connections() as http:
            for _ in range(50):  # answered by the survivor meanwhile
                async with http.get(url, headers=recording["auth"]) as response:
                    # The service's own account of a failure, should there be one.
                    assert response.status == 200, "".join(served.output[-60:])
            await until(functools.partial(replaced, served, killed), "a replacement worker")
            replacement = (workers_of(served) - before).pop()
            for _ in range(300):
                seen = len(access_lines(served))
                async with http.get(url, headers=recording["auth"]) as response:
                    assert response.status == 200, "".join(served.output[-60:])
                if (await line_after(served, seen))[0] == replacement:
                    break
            else:
                raise AssertionError("the replacement worker took no request")


def test_a_stop_that_reached_a_worker_before_its_handlers_stops_it() -> None:
    # Between fork and its own handlers, a worker runs the arbiter's, which queue what
    # they catch on the worker's copy of the arbiter's queue (gunicorn's SIG_QUEUE).
    arbiter = SimpleNamespace(SIG_QUEUE=queue.SimpleQueue())
    stopped, serving = SimpleNamespace(alive=True), SimpleNamespace(alive=True)
    remember_early_signals(arbiter, stopped)
    arbiter.SIG_QUEUE.put_nowait(signal.SIGHUP)  # not a stop: left alone
    arbiter.SIG_QUEUE.put_nowait(signal.SIGTERM)
    stop_if_stopped_early(stopped)
    assert stopped.alive is False
    remember_early_signals(SimpleNamespace(SIG_QUEUE=queue.SimpleQueue()), serving)
    stop_if_stopped_early(serving)
    assert serving.alive is True


def test_gunicorn_queues_the_signals_its_arbiter_catches() -> None:
    # What remember_early_signals relies on, in the gunicorn installed.
    source = inspect.getsource(Arbiter)
    assert "self.SIG_QUEUE = queue.SimpleQueue()" in source
    assert "self.SIG_QUEUE.put_nowait(sig)" in inspect.getsource(Arbiter.signal)
