"""The HTTP server under the application: aiohttp's, with the two things it leaves to
the application that an edge server must do itself.

- A request that cannot even be parsed (a line over 8,190 bytes, more than 128 headers,
  bytes that are not HTTP) is answered in Twilio's error shape, logged without a
  traceback and without echoing what the client sent.
- A client gets GATEWAY_HEADER_TIMEOUT to send a request's line and headers, counted
  from its first byte (or from the connection's start): a client trickling headers
  holds a connection for that long, not for ever. Bodies and downloads are not bounded.

Each connection begins in the fast lane (`fast_lane.py`), which answers the hot path's
two routes itself and hands every other request, with its connection, to aiohttp.
aiohttp has no hook for its protocol class, so `GatewayRunner` builds the server with
the ones below; the rest is aiohttp's own.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import Callable
from typing import Any, Final, cast

from aiohttp import web
from aiohttp.http_exceptions import BadHttpMethod, HttpProcessingError, LineTooLong
from aiohttp.log import access_logger
from aiohttp.web_protocol import RequestHandler

from gateway.api.access_log import AccessLines, RouteAccessLog
from gateway.api.error_bodies import error_response
from gateway.api.fast_lane import FastLane, Lane
from gateway.api.keys import METRICS
from gateway.errors import BadRequest, GatewayError
from gateway.media.headers import SECURITY_HEADERS

log = logging.getLogger(__name__)

# As web.run_app has it: how long an idle keep-alive connection is kept.
KEEPALIVE_TIMEOUT: Final = 75.0


def _unreadable(exc: BaseException | None) -> GatewayError:
    """A fixed description per failure: the parser's own message quotes the request."""
    if isinstance(exc, LineTooLong):
        return BadRequest("The request line or a header is longer than 8190 bytes")
    if isinstance(exc, BadHttpMethod):
        return BadRequest("The request method is not an HTTP method")
    if isinstance(exc, HttpProcessingError) and "Too many headers" in str(exc):
        return BadRequest("The request has more than 128 headers")
    return BadRequest("The request line or headers are not valid HTTP/1.1")


class _Protocol(RequestHandler):
    def __init__(self, manager: web.Server, *, header_timeout: float, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._header_timeout = header_timeout
        # When the headers still awaited began to arrive; None while none are awaited.
        self._headers_since: float | None = None
        # At most one timer a connection, and none for a request whose headers came in
        # one piece: a request costs an assignment, not a timer set and cancelled.
        self._header_watch: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._awaiting_headers()

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._header_watch is not None:
            self._header_watch.cancel()
            self._header_watch = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        before = self._request_count  # aiohttp's count of the requests its parser completed
        super().data_received(data)
        if self._request_count > before:
            self._headers_since = None
        elif self._headers_since is None and not (self._request_in_progress or self._messages):
            self._awaiting_headers()  # every request answered: these are the next one's first bytes

    def head_began(self, since: float) -> None:
        """The head being received began to arrive at `since`, before this took over."""
        self._headers_since = since
        if self._header_watch is not None:
            self._header_watch.cancel()
        self._header_watch = self._loop.call_at(since + self._header_timeout, self._check_headers)

    def _awaiting_headers(self) -> None:
        self._headers_since = self._loop.time()
        if self._header_watch is None:
            deadline = self._headers_since + self._header_timeout
            self._header_watch = self._loop.call_at(deadline, self._check_headers)

    def _check_headers(self) -> None:
        self._header_watch = None
        if self._headers_since is None:
            return
        deadline = self._headers_since + self._header_timeout
        if self._loop.time() < deadline:  # these headers began after the timer was set
            self._header_watch = self._loop.call_at(deadline, self._check_headers)
            return
        log.debug("closing a connection whose request headers took over %gs", self._header_timeout)
        self.force_close()

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if request.writer.output_size > 0:
            raise ConnectionError("the response has begun; no error answer can follow")
        if status < 500:
            log.debug("refused a request it could not parse: %s", type(exc).__name__)
            error = _unreadable(exc)
        else:
            self.log_exception("error answering a request", exc_info=exc)
            error = GatewayError("Internal Server Error")
        response = error_response(error)
        response.headers.update(SECURITY_HEADERS)
        response.force_close()
        return response


class _Server(web.Server):
    """Each connection begins in the fast lane, which hands it to aiohttp's protocol
    when it asks for something else."""

    def __init__(self, built: web.Server, app: web.Application, header_timeout: float) -> None:
        super().__init__(
            built.request_handler,
            request_factory=built.request_factory,
            handler_cancellation=built.handler_cancellation,
            loop=built._loop,
            **built._kwargs,
        )
        self._app = app
        self._header_timeout = header_timeout
        self._lane: Lane | None = None  # made at the first connection, once the app has started

    def __call__(self) -> RequestHandler:
        if self._lane is None:
            access = AccessLines(
                access_logger,
                self._kwargs.get("access_log_format") == "json",
                self._app[METRICS],
            )
            self._lane = Lane(
                self._app,
                self,
                self.aiohttp_protocol,
                access,
                header_timeout=self._header_timeout,
                keepalive_timeout=self._kwargs.get("keepalive_timeout", KEEPALIVE_TIMEOUT),
            )
        # aiohttp asks for a RequestHandler, but only ever uses it as a protocol.
        return cast(RequestHandler, FastLane(self._lane))

    def aiohttp_protocol(self) -> _Protocol:
        return _Protocol(self, loop=self._loop, header_timeout=self._header_timeout, **self._kwargs)

    # The registry aiohttp's shutdown walks: each connection is in it under its protocol.
    def enter(self, connection: object, transport: asyncio.Transport) -> None:
        self._connections[cast(RequestHandler, connection)] = transport

    def leave(self, connection: object) -> None:
        self._connections.pop(cast(RequestHandler, connection), None)


class GatewayRunner(web.AppRunner):
    def __init__(
        self, app: web.Application, *, header_timeout: float, freeze: bool = True, **kwargs: Any
    ) -> None:
        super().__init__(app, **kwargs)
        self._header_timeout = header_timeout
        self._freeze = freeze

    async def _make_server(self) -> web.Server:
        return _Server(await super()._make_server(), self._app, self._header_timeout)

    async def setup(self) -> None:
        await super().setup()
        if not self._freeze:  # a process that starts many servers (tests) would keep all
            return
        # What start-up made (modules, the app, pools) lives as long as the process:
        # frozen, a full collection need not walk it, which shortens the pauses that
        # collections add to a request's latency.
        gc.collect()
        gc.freeze()


def gateway_runner(
    app: web.Application,
    *,
    header_timeout: float,
    shutdown_grace: float,
    handle_signals: bool,
    log_format: str = "text",
    **kwargs: Any,
) -> GatewayRunner:
    # aiohttp makes access loggers from a class and two arguments: the metrics ride on
    # the class.
    access_log = type("RouteAccessLog", (RouteAccessLog,), {"metrics": app[METRICS]})
    return GatewayRunner(
        app,
        header_timeout=header_timeout,
        handle_signals=handle_signals,
        shutdown_timeout=shutdown_grace,
        access_log_class=access_log,
        access_log_format=log_format,  # RouteAccessLog's own: text or json
        keepalive_timeout=KEEPALIVE_TIMEOUT,
        **kwargs,
    )


def run(
    app: web.Application,
    host: str,
    port: int,
    *,
    header_timeout: float,
    shutdown_grace: float,
    loop: asyncio.AbstractEventLoop,
    announce: Callable[[str], None],
    log_format: str = "text",
) -> None:
    """Serve until SIGINT or SIGTERM, then let requests in flight run for the grace: what
    `web.run_app` does, on the runner above."""
    runner = gateway_runner(
        app,
        header_timeout=header_timeout,
        shutdown_grace=shutdown_grace,
        handle_signals=True,
        log_format=log_format,
    )

    async def serve() -> None:
        await runner.setup()
        try:
            site = web.TCPSite(runner, host, port)
            await site.start()
            announce(f"======== Running on {site.name} ========\n(Press CTRL+C to quit)")
            await asyncio.Event().wait()  # until a signal raises GracefulExit
        finally:
            await runner.cleanup()

    asyncio.set_event_loop(loop)
    main = loop.create_task(serve())
    try:
        loop.run_until_complete(main)
    except (web.GracefulExit, KeyboardInterrupt):
        pass
    finally:
        try:
            if not main.done():  # stopped by a signal: clean up within the grace
                main.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    loop.run_until_complete(main)
        finally:
            left = asyncio.all_tasks(loop)
            for task in left:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*left, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()
