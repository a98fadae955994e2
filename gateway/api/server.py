"""The HTTP server under the application: aiohttp's, with the two things it leaves to
the application that an edge server must do itself.

- A request that cannot even be parsed (a line over 8,190 bytes, more than 128 headers,
  bytes that are not HTTP) is answered in Twilio's error shape, logged without a
  traceback and without echoing what the client sent.
- A client gets GATEWAY_HEADER_TIMEOUT to send a request's line and headers, counted
  from its first byte (or from the connection's start): a client trickling headers
  holds a connection for that long, not for ever. Bodies and downloads are not bounded.

aiohttp has no hook for its protocol class, so `GatewayRunner` builds the server with
the one below; the rest is aiohttp's own.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import os
import sys
import time as _time
from collections.abc import Callable
from typing import Any, Final

from aiohttp import hdrs, web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.http_exceptions import BadHttpMethod, HttpProcessingError, LineTooLong
from aiohttp.web_protocol import RequestHandler

from gateway.api.error_bodies import error_response
from gateway.api.keys import ACCOUNT_SID, CLIENT, METRICS, RECORDING_SID, REQUEST_ID, ROUTE
from gateway.errors import BadRequest, GatewayError
from gateway.logs import json_line, utc_time
from gateway.media.headers import SECURITY_HEADERS
from gateway.metrics import Metrics

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


class _Lines:
    """Access lines on their way to stderr: those of one turn of the loop, from every
    connection, go out in one write at the end of that turn."""

    def __init__(self) -> None:
        self._pending: list[str] = []
        self._second, self._stamp = -1, ""

    def add(self, line: str) -> None:
        self._pending.append(line)
        if len(self._pending) == 1:
            asyncio.get_running_loop().call_soon(self._write)

    def now(self) -> str:
        # logging's asctime, "2026-12-01 21:32:03,196", formatted once a second.
        now = _time.time()
        second = int(now)
        if second != self._second:
            self._second = second
            self._stamp = _time.strftime("%Y-%m-%d %H:%M:%S", _time.localtime(second))
        return f"{self._stamp},{int((now - second) * 1000):03d}"

    def _write(self) -> None:
        lines, self._pending = self._pending, []
        with contextlib.suppress(OSError, ValueError):  # stderr closed: nobody to tell
            sys.stderr.write("".join(lines))
            sys.stderr.flush()


class RouteAccessLog(AbstractAccessLogger):
    """One line per request naming its route, never its path: a media link's path is
    the link's credential, and whoever reads the log must not be able to follow it;
    nor any Authorization header.

    The lines look like every other log line of `gateway serve` (text, or with
    GATEWAY_LOG_FORMAT=json an object), but skip the logging module's path through
    records, handlers and formatters (an eighth of an issuance's CPU). aiohttp makes one
    of these per connection; they share the process's `_LINES`.

    It is also where each request is counted, as it knows the route, status, size and
    duration in their final state: `gateway_runner` gives a subclass the app's metrics."""

    metrics: Metrics = Metrics.off()

    def __init__(self, logger: logging.Logger, log_format: str) -> None:
        super().__init__(logger, log_format)
        # Asked once per connection: a level set at start-up holds for its life.
        self._lines = logger.isEnabledFor(logging.INFO)
        self._json = log_format == "json"
        self._pid = os.getpid()  # a system call, so asked once
        self._prefix = f"INFO [{self._pid}] {logger.name}"
        self._peer: str | None = None  # the connection's, worked out once

    @property
    def enabled(self) -> bool:
        return self._lines or self.metrics.enabled

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        # Named by its route's guard; a request the parser refused never got that far.
        route = request.get(ROUTE, "(unparsed)")
        if self.metrics.enabled:
            size = _body_size(request, response)
            self.metrics.request_done(request.method, route, response.status, size, time)
            if not self._lines:
                return
        client = request.get(CLIENT)  # set behind a trusted proxy
        if client is None:
            if self._peer is None:
                self._peer = request.remote or "-"
            client = self._peer
        headers = request.headers
        account, recording = request.get(ACCOUNT_SID), request.get(RECORDING_SID)
        if self._json:
            fields = (client, route, account, recording)
            _LINES.add(self._json_line(request, response, time, *fields))
            return
        known = ""
        if account is not None:
            known += f" account_sid={account}"
        if recording is not None:
            known += f" recording_sid={recording}"
        if (asked := headers.get(hdrs.RANGE)) is not None:
            known += f" range={_quoted(asked)}"
        _LINES.add(
            f'{_LINES.now()} {self._prefix} {client} "{request.method} {route}" '
            f"{response.status} {response.body_length} {time:.4f}s "
            f"{_quoted(headers.get(hdrs.USER_AGENT, '-'))}{known} "
            f"request_id={request.get(REQUEST_ID, '-')}\n"
        )

    def _json_line(
        self,
        request: web.BaseRequest,
        response: web.StreamResponse,
        time: float,
        client: str,
        route: str,
        account: str | None,
        recording: str | None,
    ) -> str:
        return json_line(
            {
                "time": utc_time(_time.time()),
                "level": "INFO",
                "logger": self.logger.name,
                "pid": self._pid,
                "message": f"{request.method} {route} {response.status}",
                "request_id": request.get(REQUEST_ID),
                "client": client,
                "method": request.method,
                "route": route,
                "status": response.status,
                "bytes": response.body_length,
                "duration_ms": round(time * 1000, 3),
                "user_agent": request.headers.get(hdrs.USER_AGENT),
                "range": request.headers.get(hdrs.RANGE),
                "account_sid": account,
                "recording_sid": recording,
            }
        )


def _body_size(request: web.BaseRequest, response: web.StreamResponse) -> int:
    """The body's bytes, which aiohttp does not count apart from the headers': what the
    answer declared, once it was all sent (aiohttp notes a length only then)."""
    if not response.body_length or request.method == hdrs.METH_HEAD:
        return 0
    if response.status in (204, 304):
        return 0
    return response.content_length or 0


_LINES: Final = _Lines()
# What a client sent, quoted and escaped as JSON does (in C): a quote in a User-Agent
# or Range cannot end the field and forge the fields after it.
_quoted: Final[Callable[[str], str]] = json.encoder.encode_basestring_ascii


class _Server(web.Server):
    def __init__(self, built: web.Server, header_timeout: float) -> None:
        super().__init__(
            built.request_handler,
            request_factory=built.request_factory,
            handler_cancellation=built.handler_cancellation,
            loop=built._loop,
            **built._kwargs,
        )
        self._header_timeout = header_timeout

    def __call__(self) -> RequestHandler:
        return _Protocol(self, loop=self._loop, header_timeout=self._header_timeout, **self._kwargs)


class GatewayRunner(web.AppRunner):
    def __init__(self, app: web.Application, *, header_timeout: float, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self._header_timeout = header_timeout

    async def _make_server(self) -> web.Server:
        return _Server(await super()._make_server(), self._header_timeout)

    async def setup(self) -> None:
        await super().setup()
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
