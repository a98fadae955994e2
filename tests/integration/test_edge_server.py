"""`gateway serve` as the edge of the internet meets it: requests its parser refuses,
clients that trickle their headers, a kill in the middle of an upload, a database cut
off under load. Real processes, real sockets."""

from __future__ import annotations

import asyncio
import dataclasses
import re
import signal
import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from aiohttp import ClientSession
from yarl import URL

from gateway.accounts import create_account
from gateway.api.keys import INGESTION, STORE
from gateway.app import create_app
from gateway.config import Settings
from gateway.models import Codec
from tests.conftest import ADMIN_TOKEN, basic_auth
from tests.in_process import GatewayTestServer
from tests.integration.test_health import Relay
from tests.media import write_noisy_video
from tests.processes import ok, serving
from tests.raw import exchange, request
from tests.schema import validate_error

RECORDER = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
sqlite_only = pytest.mark.parametrize("backends", ["sqlite+local"], indirect=True)
postgres_only = pytest.mark.parametrize("backends", ["postgres+s3"], indirect=True)


def declaration(account_sid: str) -> dict[str, object]:
    return {
        "account_sid": account_sid,
        "type": "video",
        "codec": "VP8",
        "container_format": "mkv",
        "source_sid": "MT" + "0" * 32,
    }


async def start_recording(recorder: ClientSession, base_url: str, account_sid: str) -> str:
    """A recording started through the recorder API: its SID."""
    url = f"{base_url}/internal/v1/Recordings"
    async with recorder.post(url, json=declaration(account_sid)) as response:
        assert response.status == 201
        return (await response.json())["sid"]  # type: ignore[no-any-return]


# --- What the HTTP parser refuses ---------------------------------------------------------


@sqlite_only
async def test_requests_the_parser_refuses_get_twilio_json_and_no_traceback(
    env: dict[str, str], tmp_path: Path
) -> None:
    too_many = "".join(f"X-Header-{n}: {n}\r\n" for n in range(129))
    refused = [
        request("GET", "/v1/Recordings?" + "a" * 9000),  # request line over 8,190 bytes
        request("GET", "/healthz", {"X-Long": "b" * 9000}),  # a header line over 8,190
        f"GET /healthz HTTP/1.1\r\nHost: localhost\r\n{too_many}\r\n".encode(),
        b"GET /media/\xff\xfe HTTP/1.1\r\nHost: localhost\r\n\r\n",  # raw bytes in the path
        b"G\x00T / HTTP/1.1\r\nHost: localhost\r\n\r\n",  # not a method
        b"GET / HTTP/1.1\r\nHost: localhost\r\nContent-Length: -1\r\n\r\n",
    ]
    with serving(env, cwd=tmp_path) as served:
        for raw in refused:
            answer = await exchange(served.base_url, raw)
            assert answer.status == 400, raw[:40]
            assert answer.headers["X-Content-Type-Options"] == "nosniff"
            validate_error(answer.json(), 400)
            assert b"aaaa" not in answer.body
            assert b"bbbb" not in answer.body
    assert not any("Traceback" in line for line in served.output), "".join(served.output)


@sqlite_only
@pytest.mark.parametrize(
    ("host", "settings", "warned"),
    [
        ("0.0.0.0", {}, True),
        ("0.0.0.0", {"GATEWAY_ALLOWED_HOSTS": "rec.example.com"}, False),
        ("0.0.0.0", {"GATEWAY_PUBLIC_URL": "https://rec.example.com"}, False),
        ("127.0.0.1", {}, False),
    ],
)
async def test_serving_beyond_loopback_with_no_host_setting_warns_at_start_up(
    env: dict[str, str], tmp_path: Path, host: str, settings: dict[str, str], warned: bool
) -> None:
    env = {k: v for k, v in env.items() if k != "GATEWAY_PUBLIC_URL"} | settings
    with serving(env, "--host", host, cwd=tmp_path) as served:
        printed = "".join(served.printed)
    assert ("GATEWAY_ALLOWED_HOSTS" in printed) is warned, printed


# --- Clients that trickle their request -------------------------------------------------


async def _closed_by_server(reader: asyncio.StreamReader, within: float) -> bool:
    try:
        async with asyncio.timeout(within):
            return await reader.read() == b""
    except ConnectionResetError:
        # Closed too: a socket closed with bytes it had not read yet (one more trickled
        # byte arriving as the timeout fires) sends a reset instead of a FIN
        # (RFC 1122 §4.2.2.13).
        return True
    except TimeoutError:
        return False


async def _trickle(
    url: URL, stop: asyncio.Event, answered_first: bool = False
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, asyncio.Task[None]]:
    reader, writer = await asyncio.open_connection(url.host, url.port)
    if answered_first:  # a keep-alive connection whose next request trickles
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200")
        length = int(re.search(rb"(?i)content-length: (\d+)", head)[1])  # type: ignore[index]
        await reader.readexactly(length)

    async def drip() -> None:
        # A byte every 0.2 s: each keeps the connection busy, none finishes the request.
        for byte in b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Slow: " + b"x" * 1000:
            if stop.is_set() or writer.is_closing():
                return
            try:
                writer.write(bytes([byte]))
                await writer.drain()
            except ConnectionError:
                return
            await asyncio.sleep(0.2)

    return reader, writer, asyncio.create_task(drip())


@sqlite_only
async def test_clients_trickling_headers_are_let_go_after_the_header_timeout(
    env: dict[str, str], tmp_path: Path
) -> None:
    env = {**env, "GATEWAY_HEADER_TIMEOUT": "1s"}
    with serving(env, cwd=tmp_path) as served:
        url, stop = URL(served.base_url), asyncio.Event()
        started = time.monotonic()
        trickling = [await _trickle(url, stop, answered_first=n % 2 == 1) for n in range(50)]
        silent = await asyncio.open_connection(url.host, url.port)  # sends nothing at all
        readers = [reader for reader, _, _ in trickling] + [silent[0]]
        closed = await asyncio.gather(*(_closed_by_server(r, 10) for r in readers))
        stop.set()
        await asyncio.gather(*(drip for _, _, drip in trickling))
        for writer in [writer for _, writer, _ in trickling] + [silent[1]]:
            writer.close()
        assert all(closed)
        # Let go after about the timeout, not after aiohttp's 75 s keep-alive.
        assert time.monotonic() - started < 8
        async with ClientSession() as client, client.get(f"{served.base_url}/healthz") as r:
            assert r.status == 200  # and the server goes on serving


@sqlite_only
async def test_header_timeout_does_not_bound_a_slow_download(
    env: dict[str, str], tmp_path: Path
) -> None:
    env = {**env, "GATEWAY_HEADER_TIMEOUT": "1s"}
    path = tmp_path / "long.mkv"
    await asyncio.to_thread(write_noisy_video, path, 4.0, bitrate="8M")
    media = await asyncio.to_thread(path.read_bytes)
    account = await asyncio.to_thread(ok, env, "accounts", "create")
    recording = await asyncio.to_thread(
        ok, env, "ingest", str(path), "--account", account["account_sid"]
    )
    with serving(env, cwd=tmp_path) as served:
        auth = basic_auth(account["account_sid"], account["auth_token"])
        async with ClientSession(headers=auth) as http:
            url = f"{served.base_url}/v1/Recordings/{recording['sid']}/Media"
            async with http.get(url, allow_redirects=False) as response:
                link = URL((await response.json())["redirect_to"])
        server = URL(served.base_url)
        reader, writer = await asyncio.open_connection(server.host, server.port)
        writer.write(request("GET", link.raw_path_qs))
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200")
        body, started = b"", time.monotonic()
        while chunk := await reader.read(128 * 1024):
            body += chunk
            await asyncio.sleep(0.1)  # a player taking its time, well past the timeout
        writer.close()
    assert time.monotonic() - started > 2
    assert body == media
    logged = "".join(served.output)
    assert '"GET /media/{token}" 200' in logged  # the access line names the route ...
    assert link.path.rsplit("/", 1)[1] not in logged  # ... never the link's credential


# --- A kill in the middle of an upload ----------------------------------------------------


def partial_files(media: Path) -> list[Path]:
    return sorted(media.rglob("*.partial"))


async def _slow_body(first: bytes) -> AsyncIterator[bytes]:
    yield first
    await asyncio.sleep(60)  # the server is killed long before this
    yield b""


@sqlite_only
async def test_sigkill_mid_upload_leaves_no_partial_file_once_restarted_and_uploaded_again(
    env: dict[str, str], tmp_path: Path, media_files: dict[Codec, Path]
) -> None:
    env = {**env, "GATEWAY_ADMIN_TOKEN": ADMIN_TOKEN}
    media = Path(URL(env["GATEWAY_STORAGE_URL"]).path)
    account = await asyncio.to_thread(ok, env, "accounts", "create")
    video = await asyncio.to_thread(media_files[Codec.VP8].read_bytes)
    with serving(env, cwd=tmp_path) as served:
        async with ClientSession(headers=RECORDER) as recorder:
            sid = await start_recording(recorder, served.base_url, account["account_sid"])
            upload = f"{served.base_url}/internal/v1/Recordings/{sid}/Media"
            put = asyncio.create_task(recorder.put(upload, data=_slow_body(video[:100_000])))
            for _ in range(100):
                if partial_files(media):
                    break
                await asyncio.sleep(0.05)
            assert len(partial_files(media)) == 1
            served.process.send_signal(signal.SIGKILL)
            served.process.wait(10)
            with pytest.raises(Exception):  # noqa: B017, PT011  # the connection just dies
                await put
    assert len(partial_files(media)) == 1  # what the kill left

    with serving(env, cwd=tmp_path) as served:
        for _ in range(100):  # start-up clears it, in the background
            if not partial_files(media):
                break
            await asyncio.sleep(0.05)
        assert partial_files(media) == []
        async with ClientSession(headers=RECORDER) as recorder:
            base = f"{served.base_url}/internal/v1/Recordings/{sid}"
            async with recorder.put(f"{base}/Media", data=video) as r:
                assert r.status == 200
            async with recorder.post(f"{base}/Complete") as r:
                assert (await r.json())["status"] == "completed"
    assert partial_files(media) == []


@sqlite_only
async def test_upload_removes_the_abandoned_partial_file_it_replaces_and_no_other(
    env: dict[str, str], tmp_path: Path, media_files: dict[Codec, Path]
) -> None:
    env = {**env, "GATEWAY_ADMIN_TOKEN": ADMIN_TOKEN}
    media = Path(URL(env["GATEWAY_STORAGE_URL"]).path)
    account = await asyncio.to_thread(ok, env, "accounts", "create")
    video = await asyncio.to_thread(media_files[Codec.VP8].read_bytes)
    with serving(env, cwd=tmp_path) as served:
        async with ClientSession(headers=RECORDER) as recorder:
            sids = [
                await start_recording(recorder, served.base_url, account["account_sid"])
                for _ in "ab"
            ]
            # What writers killed mid-upload leave: partial files nobody holds. Made after
            # start-up, which would have removed both; the PUT removes only its own.
            replaced, other = (media / account["account_sid"] / sid for sid in sids)
            for folder in (replaced, other):
                folder.mkdir(parents=True)
                (folder / ".abc.mkv.0000.partial").write_bytes(b"half a recording")
            upload = f"{served.base_url}/internal/v1/Recordings/{sids[0]}/Media"
            async with recorder.put(upload, data=video) as r:
                assert r.status == 200
    assert partial_files(media) == [other / ".abc.mkv.0000.partial"]


@sqlite_only
async def test_upload_slower_than_the_header_timeout_completes(
    env: dict[str, str], tmp_path: Path, media_files: dict[Codec, Path]
) -> None:
    env = {**env, "GATEWAY_ADMIN_TOKEN": ADMIN_TOKEN, "GATEWAY_HEADER_TIMEOUT": "1s"}
    account = await asyncio.to_thread(ok, env, "accounts", "create")
    video = await asyncio.to_thread(media_files[Codec.VP8].read_bytes)

    async def slowly() -> AsyncIterator[bytes]:
        for start in range(0, len(video), len(video) // 10 + 1):
            yield video[start : start + len(video) // 10 + 1]
            await asyncio.sleep(0.3)  # three seconds in all, past the header timeout

    with serving(env, cwd=tmp_path) as served:
        async with ClientSession(headers=RECORDER) as recorder:
            sid = await start_recording(recorder, served.base_url, account["account_sid"])
            upload = f"{served.base_url}/internal/v1/Recordings/{sid}/Media"
            async with recorder.put(upload, data=slowly()) as r:
                assert r.status == 200
                assert (await r.json())["size"] == len(video)


@sqlite_only
async def test_recorder_leaving_mid_upload_logs_no_traceback(
    env: dict[str, str], tmp_path: Path
) -> None:
    env = {**env, "GATEWAY_ADMIN_TOKEN": ADMIN_TOKEN}
    account = await asyncio.to_thread(ok, env, "accounts", "create")
    with serving(env, cwd=tmp_path) as served:
        async with ClientSession(headers=RECORDER) as recorder:
            sid = await start_recording(recorder, served.base_url, account["account_sid"])
        head = request(
            "PUT",
            f"/internal/v1/Recordings/{sid}/Media",
            {"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Length": "1000000"},
        )
        url = URL(served.base_url)
        _reader, writer = await asyncio.open_connection(url.host, url.port)
        writer.write(head + b"x" * 100_000)  # a tenth of what it announced, then gone
        await writer.drain()
        await asyncio.sleep(0.3)
        writer.transport.abort()
        await asyncio.sleep(0.5)
        async with ClientSession() as client, client.get(f"{served.base_url}/healthz") as r:
            assert r.status == 200
    assert "Traceback" not in "".join(served.output), "".join(served.output)


# --- The database cut off under load ------------------------------------------------------


async def _answers(
    session: ClientSession, method: str, url: str, **kw: object
) -> tuple[int, str | None, int | None]:
    async with session.request(method, url, allow_redirects=False, **kw) as response:  # type: ignore[arg-type]
        code = (await response.json()).get("code") if response.status >= 400 else None
        return response.status, response.headers.get("Retry-After"), code


@postgres_only
async def test_database_cut_off_is_503_with_retry_after_logged_once_and_heals(
    env: dict[str, str], tmp_path: Path, media_files: dict[Codec, Path]
) -> None:
    upstream = URL(env["GATEWAY_DATABASE_URL"])
    relay = Relay(upstream)
    port = await relay.open()
    through = str(upstream.with_host("127.0.0.1").with_port(port))
    env = {
        **env,
        "GATEWAY_DATABASE_URL": through,
        "GATEWAY_DATABASE_TIMEOUT": "1s",
        "GATEWAY_ADMIN_TOKEN": ADMIN_TOKEN,
    }
    account = await asyncio.to_thread(ok, env, "accounts", "create")
    audio = media_files[Codec.OPUS]
    recording = await asyncio.to_thread(
        ok, env, "ingest", str(audio), "--account", account["account_sid"]
    )
    auth = basic_auth(account["account_sid"], account["auth_token"])
    with ExitStack() as stack:
        # Started from a thread: the relay runs on this test's event loop.
        served = await asyncio.to_thread(stack.enter_context, serving(env, cwd=tmp_path))
        async with ClientSession(headers=auth) as http, ClientSession() as anyone:
            media = f"{served.base_url}/v1/Recordings/{recording['sid']}/Media"
            async with http.get(media, allow_redirects=False) as response:
                link = (await response.json())["redirect_to"].replace(
                    "https://recordings.example.com", served.base_url
                )
            calls = [
                (http, "GET", f"{served.base_url}/v1/Recordings", {}),
                (http, "GET", media, {}),
                (anyone, "GET", link, {}),
                (
                    anyone,
                    "POST",
                    f"{served.base_url}/internal/v1/Recordings",
                    {"json": declaration(account["account_sid"]), "headers": RECORDER},
                ),
            ]
            healthy = await asyncio.gather(*(_answers(s, m, u, **kw) for s, m, u, kw in calls))
            assert [status for status, _, _ in healthy] == [200, 302, 200, 201]

            await relay.cut()
            for _ in range(15):  # about 120 requests during the outage
                cut = await asyncio.gather(*(_answers(s, m, u, **kw) for s, m, u, kw in calls * 2))
                assert set(cut) == {(503, "5", 20503)}, cut
            await relay.open(port)  # the network heals

            for _ in range(50):
                healed = await asyncio.gather(*(_answers(s, m, u, **kw) for s, m, u, kw in calls))
                if [status for status, _, _ in healed] == [200, 302, 200, 201]:
                    break
                await asyncio.sleep(0.1)
            assert [status for status, _, _ in healed] == [200, 302, 200, 201]
        await asyncio.to_thread(stack.close)  # the relay serves the process's goodbyes
    await relay.cut()
    text = "".join(served.output)
    assert "Traceback" not in text, text
    assert text.count("database unavailable") == 1, text
    assert text.count("database available again") == 1, text


@sqlite_only
async def test_sqlite_locked_beyond_its_timeout_is_503_and_writes_resume_once_released(
    settings: Settings, media_files: dict[Codec, Path], caplog: pytest.LogCaptureFixture
) -> None:
    settings = dataclasses.replace(settings, database_timeout=1.0)
    async with GatewayTestServer(
        create_app(settings, settings.signing_keys), host="127.0.0.1"
    ) as server:
        account = await create_account(server.app[STORE], "Locked out")
        recording = await server.app[INGESTION].ingest(media_files[Codec.OPUS], account.sid)
        url = server.make_url(f"/v1/Recordings/{recording.sid}")
        # Another process holding SQLite's write lock, as a stuck `gateway purge` would.
        other = sqlite3.connect(settings.sqlite_path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        async with ClientSession(headers=basic_auth(account.sid, account.auth_token)) as http:
            deleting = asyncio.create_task(http.delete(url))
            await asyncio.sleep(0.1)  # the delete now waits for the lock
            async with http.get(url) as response:
                assert response.status == 200  # reads are not queued behind it (WAL)
            assert not deleting.done()
            async with await deleting as response:
                assert response.status == 503
                assert response.headers["Retry-After"] == "5"
                validate_error(await response.json(), 503)
            other.execute("ROLLBACK")
            other.close()
            async with http.delete(url) as response:
                assert response.status == 204
    outages = [r.getMessage() for r in caplog.records if r.name == "gateway.store.outages"]
    assert len(outages) == 2  # unavailable, then available again
    assert not any(r.exc_info for r in caplog.records)
