"""The one place media bytes move: from storage to the client, with backpressure."""

from __future__ import annotations

import asyncio

from aiohttp import hdrs, web

from gateway.media.reply import Reply
from gateway.storage import FileBackedReader, MediaReader, MediaStorage


async def send(
    request: web.Request, reply: Reply, storage: MediaStorage, key: str, *, sendfile: bool
) -> web.StreamResponse:
    if reply.body is None or request.method == hdrs.METH_HEAD:
        response = web.StreamResponse(status=reply.status, headers=reply.headers)
        if reply.body is not None:
            response.content_length = reply.body[1] - reply.body[0]
        await response.prepare(request)
        await response.write_eof()
        return response
    start, end = reply.body
    # Opened before the status line goes out, so a missing object or an outage is a
    # clean 404 or 503 rather than a truncated 200.
    reader = await storage.open(key, start, end)
    try:
        response = web.StreamResponse(status=reply.status, headers=reply.headers)
        response.content_length = end - start
        await response.prepare(request)
        if sendfile and isinstance(reader, FileBackedReader):
            await _sendfile(request, response, reader)
        else:
            await _pump(response, reader)
        await response.write_eof()
        return response
    finally:
        await reader.aclose()


async def _pump(response: web.StreamResponse, reader: MediaReader) -> None:
    async for chunk in reader.chunks():
        await response.write(chunk)  # waits while the client's socket is full


async def _sendfile(
    request: web.Request, response: web.StreamResponse, reader: FileBackedReader
) -> None:
    transport = request.transport
    if transport is None:
        raise ConnectionResetError("client went away")
    loop = asyncio.get_running_loop()
    try:
        await loop.sendfile(transport, reader.file, reader.start, reader.end - reader.start)
    except NotImplementedError:
        # uvloop, TLS transports: no zero-copy path, so read in chunks instead.
        await _pump(response, reader)
