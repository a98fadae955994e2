"""`/internal/v1/`: the API recorders use to hand recordings in."""

from __future__ import annotations

from typing import Final

from aiohttp import web

from gateway.api.declarations import parse_declaration
from gateway.api.handlers import base_url
from gateway.api.keys import INGESTION
from gateway.api.serialize import recording_json
from gateway.errors import InvalidParameter
from gateway.models import Recording

UPLOAD_CHUNK_SIZE: Final = 1024 * 1024


async def _json(request: web.Request) -> object:
    if not request.can_read_body:
        return {}
    try:
        return await request.json()
    except (ValueError, RecursionError):
        # RecursionError: nesting deeper than the parser's stack, which is not JSON we take.
        raise InvalidParameter("body", "is not valid JSON") from None


def _answer(request: web.Request, recording: Recording, status: int = 200) -> web.Response:
    return web.json_response(recording_json(base_url(request), recording), status=status)


async def start_recording(request: web.Request) -> web.Response:
    declared = parse_declaration(await _json(request))
    return _answer(request, await request.app[INGESTION].start(declared), status=201)


async def upload_media(request: web.Request) -> web.Response:
    # Streamed through as it arrives (chunked or not): never held whole in memory.
    chunks = request.content.iter_chunked(UPLOAD_CHUNK_SIZE)
    return _answer(request, await request.app[INGESTION].upload(request.match_info["sid"], chunks))


async def complete_recording(request: web.Request) -> web.Response:
    return _answer(request, await request.app[INGESTION].complete(request.match_info["sid"]))


async def fail_recording(request: web.Request) -> web.Response:
    body = await _json(request)
    reason = body.get("reason") if isinstance(body, dict) else None
    if reason is not None and not isinstance(reason, str):
        raise InvalidParameter("reason", "must be a string")
    recording = await request.app[INGESTION].fail(request.match_info["sid"], reason or "")
    return _answer(request, recording)
