"""A rolling restart: SIGTERM stops new connections but lets downloads in flight finish."""

from __future__ import annotations

import asyncio
import re
import signal
from pathlib import Path

import pytest
from aiohttp import ClientSession
from yarl import URL

from tests.conftest import basic_auth
from tests.media import write_noisy_video
from tests.processes import ok, serving


async def refused(url: URL) -> bool:
    try:
        _, writer = await asyncio.open_connection(url.host, url.port)
    except (ConnectionRefusedError, ConnectionResetError):  # reset: the listener just closed
        return True
    writer.close()
    return False


@pytest.mark.parametrize(("grace", "finished"), [("60s", True), ("0.5s", False)])
async def test_sigterm_refuses_new_connections_and_gives_downloads_the_grace_period(
    env: dict[str, str], tmp_path: Path, grace: str, finished: bool
) -> None:
    env = {**env, "GATEWAY_SHUTDOWN_GRACE": grace}
    path = tmp_path / "long.mkv"
    # Well past what socket buffers hold, so the download is still being sent.
    await asyncio.to_thread(write_noisy_video, path, 10.0, bitrate="16M")
    media = await asyncio.to_thread(path.read_bytes)
    account = await asyncio.to_thread(ok, env, "accounts", "create")
    recording = await asyncio.to_thread(
        ok, env, "ingest", str(path), "--account", account["account_sid"]
    )
    with serving(env) as served:
        auth = basic_auth(account["account_sid"], account["auth_token"])
        async with (
            ClientSession(headers=auth) as http,
            http.get(
                f"{served.base_url}/v1/Recordings/{recording['sid']}/Media",
                allow_redirects=False,
            ) as response,
        ):
            link = URL((await response.json())["redirect_to"])
        server = URL(served.base_url)  # the link names the public URL, not this process
        reader, writer = await asyncio.open_connection(server.host, server.port)
        writer.write(f"GET {link.raw_path_qs} HTTP/1.1\r\nHost: {link.host}\r\n\r\n".encode())
        assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200")
        body = await reader.readexactly(64 * 1024)

        served.process.send_signal(signal.SIGTERM)
        for _ in range(50):
            if await refused(server):
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("still accepting connections after SIGTERM")
        await asyncio.sleep(1.5)  # a slow client: within 60 s of grace, not within 0.5 s
        assert (served.process.poll() is None) is finished
        if finished:  # an impatient operator: the second signal must not break the stop
            served.process.send_signal(signal.SIGTERM)

        body += await reader.read()  # the server closes once it has sent all it will
        writer.close()
        assert (body == media) is finished
        assert await asyncio.to_thread(served.process.wait, 10) == 0
        if finished:  # the access line counts the bytes the kernel sent (sendfile)
            for _ in range(50):
                logged = re.search(r'"GET /media/\{token\}" 200 (\d+)', "".join(served.output))
                if logged:
                    break
                await asyncio.sleep(0.1)
            assert logged is not None, "".join(served.output)
            assert int(logged[1]) > len(media)  # the body and its headers
