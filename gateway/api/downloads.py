"""`GET|HEAD /media/{token}`: the signed link players and browsers follow. The hot path."""

from __future__ import annotations

from aiohttp import web

from gateway.api.keys import RECORDINGS, SENDFILE, STORAGE
from gateway.media.reply import decide
from gateway.media.send import send


async def download_media(request: web.Request) -> web.StreamResponse:
    recordings = request.app[RECORDINGS]
    grant, recording = await recordings.redeem_media_link(request.match_info["token"])
    reply = decide(request.headers, recording, grant, recordings.now())
    assert recording.media_key is not None  # redeem_media_link admits only stored media
    return await send(
        request, reply, request.app[STORAGE], recording.media_key, sendfile=request.app[SENDFILE]
    )
