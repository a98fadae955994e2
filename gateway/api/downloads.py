"""`GET|HEAD /media/{token}`: the signed link players and browsers follow. The hot path."""

from __future__ import annotations

from aiohttp import web

from gateway.api.forwarded import REQUEST_ID_HEADER
from gateway.api.keys import (
    ACCOUNT_SID,
    CORS_HEADERS,
    MEDIA_LINKS,
    METRICS,
    RECORDING_SID,
    REQUEST_ID,
    SENDFILE,
    STORAGE,
)
from gateway.media.reply import decide
from gateway.media.send import send


async def download_media(request: web.Request) -> web.StreamResponse:
    links = request.app[MEDIA_LINKS]
    media = await links.redeem(request.match_info["token"])
    request[ACCOUNT_SID], request[RECORDING_SID] = media.account_sid, media.recording_sid
    reply = decide(request.headers, media, links.now())
    # What every_answer adds to answers not yet prepared: a streamed one is, by then.
    cors: dict[str, str] = request[CORS_HEADERS]
    reply.headers.update(cors)
    reply.headers[REQUEST_ID_HEADER] = request[REQUEST_ID]
    app = request.config_dict
    return await send(
        request, reply, app[STORAGE], media.key, sendfile=app[SENDFILE], metrics=app[METRICS]
    )
