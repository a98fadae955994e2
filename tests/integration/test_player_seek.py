"""A media player (FFmpeg's HTTP client, through PyAV) opens a signed link and seeks."""

from __future__ import annotations

import asyncio
from pathlib import Path

import av
import pytest
from aiohttp import ClientSession, web

from gateway.ingestion import Ingestion
from gateway.models import Account, Recording
from tests.media import write_noisy_video


@pytest.fixture
def ranges_served(app: web.Application) -> list[str]:
    """The Content-Range of every partial response the app sends."""
    served: list[str] = []

    async def note(request: web.Request, response: web.StreamResponse) -> None:
        if response.status == 206:
            served.append(response.headers["Content-Range"])

    app.on_response_prepare.append(note)
    return served


def first_frame_time_after_seek(url: str, seconds: float) -> float:
    with av.open(url, options={"seekable": "1"}) as container:
        stream = container.streams.video[0]
        assert container.duration is not None
        container.seek(int(seconds / stream.time_base), stream=stream)
        frame = next(container.decode(stream))
        assert frame.time is not None
        return frame.time


async def test_pyav_opens_a_signed_link_and_seeks(
    ranges_served: list[str],  # first: it must hook the app before the server starts
    tmp_path: Path,
    ingestion: Ingestion,
    account: Account,
    http: ClientSession,
    base_url: str,
) -> None:
    path = tmp_path / "long.mkv"
    await asyncio.to_thread(write_noisy_video, path, 12.0)
    recording: Recording = await ingestion.ingest(path, account.sid)
    url = f"{base_url}/v1/Recordings/{recording.sid}/Media"
    async with http.get(url, params={"ContentDisposition": "inline"}, allow_redirects=False) as r:
        link = (await r.json())["redirect_to"]
    landed = await asyncio.to_thread(first_frame_time_after_seek, link, 8.0)
    # A seek lands on the keyframe at or before the target (one each second).
    assert 7.0 <= landed <= 8.0
    # ...and it got there by asking for a later part of the file, not by reading through.
    assert any(not served.startswith("bytes 0-") for served in ranges_served), ranges_served
