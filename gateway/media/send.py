"""The one place media bytes move: from storage to the client, with backpressure."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from typing import Final, cast

from aiohttp import hdrs, web

from gateway.errors import MediaMissing
from gateway.media.reply import Reply
from gateway.metrics import Metrics
from gateway.storage import FileBackedReader, MediaReader, MediaStorage

log = logging.getLogger(__name__)

# Every stream starts with small pieces, so the many slow players a server holds open
# cost little memory each. One whose client took its first FAST_AFTER bytes at
# FAST_RATE or more (a download, not a player) is read in large pieces from then on:
# a quarter less CPU per byte, for a few MiB more memory, as storage buffers up to
# twice a piece ahead.
SMALL_PIECE: Final = 256 * 1024
LARGE_PIECE: Final = 1024 * 1024
FAST_AFTER: Final = 16 * 1024 * 1024
FAST_RATE: Final = 64 * 1024 * 1024  # bytes a second
# A range this small (a player's probe, a seek's first bytes) is read whole and sent
# with the headers in one write.
WHOLE_BODY: Final = 64 * 1024


async def send(
    request: web.Request,
    reply: Reply,
    storage: MediaStorage,
    key: str,
    *,
    sendfile: bool,
    metrics: Metrics,
) -> web.StreamResponse:
    if reply.body is None:  # 304, or 412 with nothing to say (RFC 9110 §8.6)
        return await _headers_only(request, reply, None if reply.status == 304 else 0)
    start, end = reply.body
    # Storage is asked before the status line goes out, so a missing object or an
    # outage is a clean 404 or 503 rather than a truncated 200.
    if request.method == hdrs.METH_HEAD:
        await check_stored(storage, key)
        return await _headers_only(request, reply, end - start)
    if end - start <= WHOLE_BODY:
        body = await read_whole(storage, key, start, end, metrics)
        return web.Response(status=reply.status, headers=reply.headers, body=body)
    try:
        reader = await storage.open(key, start, end)
    except MediaMissing:
        _missing(key)
        raise
    response = web.StreamResponse(status=reply.status, headers=reply.headers)
    response.content_length = end - start
    metrics.download_started()
    try:
        writer = await response.prepare(request)
        try:
            if sendfile:  # only ever set for storage whose readers are file-backed
                await _sendfile(request, cast(FileBackedReader, reader), metrics.media_sent_now)
                if writer is not None:  # the kernel's bytes, for the access log
                    writer.output_size += end - start
            else:
                await _pump(response, reader, metrics.media_sent_now)
        except ConnectionError:
            # The client left (players do so all the time when they seek): not an error.
            log.debug("client left while streaming %s", key)
            return response
        except Exception:
            # The status line is gone: the only honest answer left is a cut connection,
            # which the client sees as a body shorter than its Content-Length.
            log.exception("streaming %s broke off", key)
            if request.transport is not None:
                request.transport.abort()
            return response
        await response.write_eof()
        return response
    finally:
        metrics.download_finished()
        await reader.aclose()


async def _headers_only(
    request: web.Request, reply: Reply, content_length: int | None = None
) -> web.StreamResponse:
    response = web.StreamResponse(status=reply.status, headers=reply.headers)
    if content_length is not None:
        response.content_length = content_length
    await response.prepare(request)
    await response.write_eof()
    return response


async def check_stored(storage: MediaStorage, key: str) -> None:
    """What a HEAD asks of storage: that the object is there (S3 HeadObject, never a GET)."""
    try:
        await storage.size_of(key)
    except MediaMissing:
        _missing(key)
        raise


async def read_whole(
    storage: MediaStorage, key: str, start: int, end: int, metrics: Metrics
) -> bytes:
    """A small range (at most WHOLE_BODY bytes) read at once, to go out with the headers
    in one write."""
    try:
        body = await _read_all(await storage.open(key, start, end), key)
    except MediaMissing:
        _missing(key)
        raise
    metrics.media_sent_now(len(body))  # handed to the transport in one write
    return body


def _missing(key: str) -> None:
    log.error("metadata says %s is stored, but storage does not have it", key)


async def _read_all(reader: MediaReader, key: str) -> bytes:
    try:
        pieces = []
        while piece := await reader.read(reader.end - reader.start):
            pieces.append(piece)
    finally:
        await reader.aclose()
    body = b"".join(pieces)
    if len(body) != reader.end - reader.start:
        raise MediaMissing(f"{key} is shorter than its metadata says")
    return body


async def _pump(
    response: web.StreamResponse, reader: MediaReader, sent_now: Callable[[int], None]
) -> None:
    loop = asyncio.get_running_loop()
    started, sent, piece = loop.time(), 0, SMALL_PIECE
    while chunk := await reader.read(piece):
        await response.write(chunk)  # waits while the client's socket is full
        sent_now(len(chunk))
        crossed = sent < FAST_AFTER <= sent + len(chunk)
        sent += len(chunk)
        if crossed and FAST_RATE * (loop.time() - started) <= FAST_AFTER:
            piece = LARGE_PIECE


async def _sendfile(
    request: web.Request, reader: FileBackedReader, sent_now: Callable[[int], None]
) -> None:
    """os.sendfile from the file onto the client's socket: the kernel moves the bytes,
    on any loop (uvloop has no loop.sendfile). It writes to a duplicate of the socket,
    so that waiting for room is the loop's own add_writer, not the transport's."""
    transport = request.transport
    if transport is None or transport.is_closing():
        raise ConnectionResetError("client went away")
    loop = asyncio.get_running_loop()
    client = os.dup(transport.get_extra_info("socket").fileno())
    try:
        while transport.get_write_buffer_size():  # the headers go first
            await _writable(loop, client)
            await asyncio.sleep(0)  # for the transport to write them
        offset, left = reader.start, reader.end - reader.start
        while left:
            if transport.is_closing():
                raise ConnectionResetError("client went away")
            try:
                sent = os.sendfile(client, reader.fd, offset, min(left, LARGE_PIECE))
            except BlockingIOError:
                await _writable(loop, client)
                continue
            if sent == 0:  # the file is shorter than its metadata says
                raise MediaMissing("the file ended before its metadata says it does")
            offset, left = offset + sent, left - sent
            sent_now(sent)
            await asyncio.sleep(0)  # a piece at a time, so other requests get the loop too
    finally:
        os.close(client)


async def _writable(loop: asyncio.AbstractEventLoop, fd: int) -> None:
    ready: asyncio.Future[None] = loop.create_future()

    def room() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_writer(fd, room)
    try:
        await ready
    finally:
        loop.remove_writer(fd)
