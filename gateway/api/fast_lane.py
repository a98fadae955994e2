"""The hot path's two routes answered on the raw connection, below aiohttp: issuing a
media link (`GET|HEAD /v1/[Rooms/{RM…}/]Recordings/{RT…}/Media`) and serving a small
range of one (`GET|HEAD /media/{token}`).

Through aiohttp, a request's URL object, multidict headers, request and response
objects, router, middleware and header serializer cost more CPU than all of the
gateway's own work for these two, which is why they come here (README, Benchmarks).

Every connection starts in this lane, which takes only the requests whose heads
`lane_requests.read_head` accepts. Any other request hands the connection over to
aiohttp's server with every byte received since the request began, and aiohttp answers
it and everything after it on that connection. What the lane answers is what the
application would: the same use-cases, error bodies, CORS and security headers,
request ids, access lines and metrics.
"""

from __future__ import annotations

import asyncio
import contextvars
import email.utils
import functools
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Final, Protocol, cast
from urllib.parse import parse_qsl

from aiohttp import web
from aiohttp.http import SERVER_SOFTWARE
from aiohttp.tcp_helpers import tcp_keepalive
from multidict import MultiDict

from gateway.api.access_log import AccessLines
from gateway.api.error_bodies import error_body
from gateway.api.forwarded import REQUEST_ID_HEADER, identify
from gateway.api.handlers import base_url_of
from gateway.api.keys import AUTHENTICATOR, MEDIA_LINKS, METRICS, SETTINGS, STORAGE
from gateway.api.lane_requests import (
    MEDIA_ROUTE,
    LaneRequest,
    may_be_ours,
    read_head,
)
from gateway.api.query import parse_media_link
from gateway.api.routes import api_cors, media_cors
from gateway.api.serialize import redirect_json
from gateway.errors import GatewayError, Unavailable
from gateway.logs import CURRENT_REQUEST
from gateway.media.headers import SECURITY_HEADERS
from gateway.media.reply import decide
from gateway.media.send import check_stored, read_whole
from gateway.media_links import MediaLinkRequest

log = logging.getLogger(__name__)

# Bytes of pipelined requests kept while one is answered, before reading pauses.
READ_AHEAD: Final = 64 * 1024

_JSON: Final = "application/json; charset=utf-8"


@dataclass(slots=True)
class _Answer:
    status: int
    headers: dict[str, str]
    body: bytes = b""
    # What Content-Length says when no body is sent: HEAD's, the GET's length.
    length: int | None = None


class Connections(Protocol):
    """The server each connection registers with, for graceful shutdown."""

    def enter(self, connection: Any, transport: asyncio.Transport) -> None: ...
    def leave(self, connection: Any) -> None: ...


class Successor(Protocol):
    """aiohttp's protocol for a connection this lane hands over."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None: ...
    def data_received(self, data: bytes) -> None: ...
    def head_began(self, since: float) -> None:
        """The head being received began to arrive at `since` (the loop's time)."""


@functools.lru_cache(maxsize=256)
def _link_request(query: str) -> MediaLinkRequest:
    return parse_media_link(MultiDict(parse_qsl(query, keep_blank_values=True)))


_STATUS_LINES: Final = {
    status.value: f"HTTP/1.1 {status.value} {status.phrase}\r\n" for status in HTTPStatus
}


class _Clock:
    """The Date header, formatted once a second."""

    def __init__(self) -> None:
        self._second, self._date = -1, ""

    def date(self) -> str:
        second = int(time.time())
        if second != self._second:
            self._second, self._date = second, email.utils.formatdate(second, usegmt=True)
        return self._date


class Lane:
    """What every connection's lane shares: the application's use-cases, the settings
    and the access log, looked up once."""

    def __init__(
        self,
        app: web.Application,
        connections: Connections,
        aiohttp_protocol: Callable[[], Successor],
        access: AccessLines,
        *,
        header_timeout: float,
        keepalive_timeout: float,
    ) -> None:
        settings = app[SETTINGS]
        self.settings = settings
        self.links = app[MEDIA_LINKS]
        self.authenticate = app[AUTHENTICATOR]
        self.storage = app[STORAGE]
        self.metrics = app[METRICS]
        self.active = self.metrics.requests_in_flight
        self.media_cors = media_cors(settings)
        self.api_cors = api_cors(settings)
        self.connections = connections
        self.aiohttp_protocol = aiohttp_protocol
        self.access = access
        self.header_timeout = header_timeout
        self.keepalive_timeout = keepalive_timeout
        self.clock = _Clock()
        # Local metadata and media answer on the loop without waiting for anything, so
        # a request's coroutine is run at once, not as a task (which costs more than
        # the rest of an issuance). Other backends wait on the network: a task each.
        self.at_once = settings.uses_sqlite and self.storage.serves_files

    def answer(self, request: LaneRequest, peer: str) -> Coroutine[Any, Any, _Answer]:
        if request.route == MEDIA_ROUTE:
            return self._media(request)
        return self._issue(request, peer)

    async def _issue(self, request: LaneRequest, peer: str) -> _Answer:
        room_sid, sid, query = request.params
        assert sid is not None  # the route's pattern has it
        request.recording_sid = sid
        if self.api_cors is not None:
            request.cors = self.api_cors.headers(request.headers.get("Origin"))
        account_sid = await self.authenticate(request.headers.get("Authorization"))
        request.account_sid = account_sid
        link = _link_request(query or "")
        base = base_url_of(self.settings, "http", request.headers, peer)
        location = await self.links.issue(account_sid, sid, room_sid, link, base)
        body = redirect_json(location).encode()
        return _Answer(302, {"Location": location, "Content-Type": _JSON, **SECURITY_HEADERS}, body)

    async def _media(self, request: LaneRequest) -> _Answer:
        request.cors = self.media_cors.headers(request.headers.get("Origin"))
        (token,) = request.params
        assert token is not None
        media = await self.links.redeem(token)
        request.account_sid, request.recording_sid = media.account_sid, media.recording_sid
        reply = decide(request.headers, media, self.links.now())
        if reply.body is None:  # 304 or 412
            return _Answer(reply.status, reply.headers)
        start, end = reply.body
        if request.method == "HEAD":
            await check_stored(self.storage, media.key)
            return _Answer(reply.status, reply.headers, length=end - start)
        body = await read_whole(self.storage, media.key, start, end, self.metrics)
        return _Answer(reply.status, reply.headers, body)

    def failed(self, request: LaneRequest, exc: BaseException) -> _Answer:
        """The answer to a use-case's error: Twilio's error body, as every_answer gives."""
        if isinstance(exc, GatewayError):
            error = exc
        elif isinstance(exc, asyncio.CancelledError):  # the process is stopping
            error = Unavailable("The service is shutting down", retry_after=1)
        else:
            log.error(
                "unexpected error answering %s %s",
                request.method,
                request.route,
                exc_info=exc,
            )
            error = GatewayError("Internal Server Error")
        body = error_body(error).encode()
        headers = {**error.headers, "Content-Type": _JSON, **SECURITY_HEADERS}
        return _Answer(error.status, headers, body)

    def serialize(self, request: LaneRequest, answer: _Answer) -> bytes:
        headers = [_STATUS_LINES[answer.status]]
        for name, value in answer.headers.items():
            headers.append(f"{name}: {value}\r\n")
        for name, value in request.cors.items():
            headers.append(f"{name}: {value}\r\n")
        length = len(answer.body) if answer.length is None else answer.length
        if answer.status != 304:  # RFC 9110 §8.6: a 304 says nothing of a length
            headers.append(f"Content-Length: {length}\r\n")
        if request.close:
            headers.append("Connection: close\r\n")
        headers.append(
            f"{REQUEST_ID_HEADER}: {request.request_id}\r\n"
            f"Date: {self.clock.date()}\r\nServer: {SERVER_SOFTWARE}\r\n\r\n"
        )
        head = "".join(headers).encode()
        return head if request.method == "HEAD" else head + answer.body


class FastLane(asyncio.Protocol):
    """One connection, while it asks only for what the lane answers."""

    def __init__(self, lane: Lane) -> None:
        self._lane = lane
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._peer = "-"
        self._buffer = bytearray()
        self._answering = False  # a request's answer is being worked out
        self._closing = False  # answer what is under way, then close
        self._reading_paused = False
        self._writing_paused = False
        self._answered: asyncio.Future[None] | None = None  # what a shutdown waits for
        # When the head still awaited began to arrive; None while none is.
        self._head_since: float | None = None
        self._idle_since = 0.0  # when the last answer went out
        # One timer a connection, for the head and for idleness: a request moves the
        # deadline by an assignment, and the timer finds out when it fires.
        self._timer: asyncio.TimerHandle | None = None
        # Each connection has its own context, as aiohttp's task per connection has:
        # the request id set for one connection's log lines is not another's.
        self._context = contextvars.copy_context()

    # ---- the connection ----

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport = cast(asyncio.Transport, transport)
        tcp_keepalive(transport)
        peer = transport.get_extra_info("peername")
        if isinstance(peer, (list, tuple)) and peer:
            self._peer = str(peer[0])
        self._lane.connections.enter(self, transport)
        # A connection that never sends a request is held only as long as a slow head.
        self._head_since = self._loop.time()
        self._timer = self._loop.call_at(self._time_limit(), self._check_time)

    def connection_lost(self, exc: BaseException | None) -> None:
        self._transport = None
        self._buffer.clear()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._lane.connections.leave(self)
        self._wake_shutdown()

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if self._answering or self._writing_paused:
            if len(self._buffer) > READ_AHEAD and not self._reading_paused:
                self._reading_paused = True
                assert self._transport is not None
                self._transport.pause_reading()
            return
        self._next()

    def eof_received(self) -> bool | None:
        return None  # the transport closes; an answer under way is dropped

    def pause_writing(self) -> None:
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False
        if not self._answering:
            self._next()

    # ---- graceful shutdown, as aiohttp's web.Server asks of each connection ----

    def close(self) -> None:
        """Take no further request; close once the one under way is answered."""
        self._closing = True
        if not self._answering and self._transport is not None:
            self._transport.close()

    # aiohttp's web.Server calls it so, with the grace left.
    async def shutdown(self, timeout: float | None = 15.0) -> None:  # noqa: ASYNC109
        self._closing = True
        if self._answering:
            self._answered = self._loop.create_future()
            try:
                async with asyncio.timeout(timeout):
                    await self._answered
            except TimeoutError:
                pass
        if self._transport is not None:
            self._transport.close()

    def _wake_shutdown(self) -> None:
        if self._answered is not None and not self._answered.done():
            self._answered.set_result(None)

    # ---- requests ----

    def _next(self) -> None:
        """Answer the requests received, in order, while they are this lane's."""
        buffer = self._buffer
        while buffer and not self._answering and not self._writing_paused:
            if self._transport is None:
                return
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                if not may_be_ours(buffer):
                    self._hand_over()
                    return
                if self._head_since is None:
                    self._head_since = self._loop.time()
                    self._check_sooner()
                break
            request = read_head(buffer[:end])
            if request is None:
                self._hand_over()
                return
            if self._closing:
                self._transport.close()
                return
            del buffer[: end + 4]
            self._head_since = None
            self._context.run(self._start, request)
        if self._reading_paused and not self._answering and self._transport is not None:
            self._reading_paused = False
            self._transport.resume_reading()

    def _start(self, request: LaneRequest) -> None:
        lane = self._lane
        forwarded_for, request.request_id = identify(
            self._peer, request.headers, lane.settings.trusted_proxies
        )
        request.client = forwarded_for or self._peer
        CURRENT_REQUEST.set(request.request_id)
        lane.active.inc()
        request.started = self._loop.time()
        working = lane.answer(request, self._peer)
        if not lane.at_once:
            self._answering = True
            task = self._loop.create_task(working)
            task.add_done_callback(functools.partial(self._answered_later, request))
            return
        try:
            waiting = working.send(None)
        except StopIteration as done:
            self._send(request, done.value)
            return
        except BaseException as exc:
            self._send(request, lane.failed(request, exc))
            return
        # It waits after all (a locked database, a file not yet cached): the rest is
        # a task's.
        self._answering = True
        task = self._loop.create_task(_resumed(working, waiting))
        task.add_done_callback(functools.partial(self._answered_later, request))

    def _answered_later(self, request: LaneRequest, task: asyncio.Task[_Answer]) -> None:
        self._answering = False
        if task.cancelled():
            answer = self._lane.failed(request, asyncio.CancelledError())
        elif (exc := task.exception()) is not None:
            answer = self._lane.failed(request, exc)
        else:
            answer = task.result()
        self._context.run(self._send, request, answer)
        self._wake_shutdown()
        if self._closing:
            if self._transport is not None:
                self._transport.close()
            return
        self._next()

    def _send(self, request: LaneRequest, answer: _Answer) -> None:
        lane = self._lane
        lane.active.dec()
        self._idle_since = now = self._loop.time()
        data = lane.serialize(request, answer)
        transport = self._transport
        if transport is not None and not transport.is_closing():
            transport.write(data)
            if request.close:
                self._closing = True
                transport.close()
        if lane.access.enabled:
            body = 0 if request.method == "HEAD" or answer.status == 304 else len(answer.body)
            lane.access.add(
                request.client,
                request.method,
                request.route,
                answer.status,
                len(data),
                body,
                now - request.started,
                request.headers,
                request.account_sid,
                request.recording_sid,
                request.request_id,
            )

    # ---- handing over to aiohttp ----

    def _hand_over(self) -> None:
        """aiohttp's server takes this connection for good, from the request whose bytes
        are in the buffer."""
        transport = self._transport
        assert transport is not None
        if self._closing:
            transport.close()
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._lane.connections.leave(self)
        self._transport = None
        protocol = self._lane.aiohttp_protocol()
        transport.set_protocol(cast(asyncio.BaseProtocol, protocol))
        protocol.connection_made(transport)
        if self._head_since is not None:
            protocol.head_began(self._head_since)  # its time counts from its first byte
        if self._reading_paused:
            transport.resume_reading()
        received, self._buffer = bytes(self._buffer), bytearray()
        protocol.data_received(received)

    # ---- time limits ----

    def _time_limit(self) -> float:
        """When the connection is closed unless something happens first."""
        if self._answering:  # answers are not timed: look again later
            return self._loop.time() + self._lane.keepalive_timeout
        if self._head_since is not None:
            return self._head_since + self._lane.header_timeout
        return self._idle_since + self._lane.keepalive_timeout

    def _check_time(self) -> None:
        self._timer = None
        if self._transport is None:
            return
        limit = self._time_limit()
        if self._loop.time() < limit:
            self._timer = self._loop.call_at(limit, self._check_time)
            return
        if self._head_since is not None:
            log.debug(
                "closing a connection whose request head took over %gs", self._lane.header_timeout
            )
        self._transport.close()

    def _check_sooner(self) -> None:
        """The limit moved closer (a head began): the timer must not fire later."""
        limit = self._time_limit()
        if self._timer is not None and self._timer.when() > limit:
            self._timer.cancel()
            self._timer = self._loop.call_at(limit, self._check_time)


async def _resumed(working: Coroutine[Any, Any, _Answer], waiting: Any) -> _Answer:
    """The rest of a coroutine begun outside any task, from the point where it first
    waited: what a task does with a coroutine (Python 3.12's eager tasks)."""
    while True:
        try:
            if waiting is None:
                await asyncio.sleep(0)  # a bare yield: a turn of the loop
            else:
                # A task clears the flag the future set as it was yielded; awaited
                # again with it set, a future refuses.
                waiting._asyncio_future_blocking = False
                await waiting
        except asyncio.CancelledError as cancelled:
            try:
                waiting = working.throw(cancelled)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]
            continue
        except Exception:
            pass  # the awaited future's own error, which the coroutine reads from it
        try:
            waiting = working.send(None)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
