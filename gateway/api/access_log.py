"""One line per request, naming its route, never its path: a media link's path is the
link's credential, and whoever reads the log must not be able to follow it; nor any
Authorization header.

The lines look like every other log line of `gateway serve` (text, or with
GATEWAY_LOG_FORMAT=json an object), but skip the logging module's path through
records, handlers and formatters (an eighth of an issuance's CPU)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sys
import time as _time
from collections.abc import Callable, Mapping
from typing import Final

from aiohttp import hdrs, web
from aiohttp.abc import AbstractAccessLogger

from gateway.api.keys import ACCOUNT_SID, CLIENT, RECORDING_SID, REQUEST_ID, ROUTE
from gateway.logs import json_line, utc_time
from gateway.metrics import Metrics


class _Pending:
    """Access lines on their way to stderr: those of one turn of the loop, from every
    connection, go out in one write at the end of that turn."""

    def __init__(self) -> None:
        self._lines: list[str] = []
        self._second, self._stamp = -1, ""

    def add(self, line: str) -> None:
        self._lines.append(line)
        if len(self._lines) == 1:
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
        lines, self._lines = self._lines, []
        with contextlib.suppress(OSError, ValueError):  # stderr closed: nobody to tell
            sys.stderr.write("".join(lines))
            sys.stderr.flush()


_PENDING: Final = _Pending()
# What a client sent, quoted and escaped as JSON does (in C): a quote in a User-Agent
# or Range cannot end the field and forge the fields after it.
_quoted: Final[Callable[[str], str]] = json.encoder.encode_basestring_ascii


class AccessLines:
    """Where each answered request is written and counted, whichever server answered it.
    `metrics` counts every request, by route, status class and method."""

    def __init__(self, logger: logging.Logger, json_format: bool, metrics: Metrics) -> None:
        # Asked once: a level set at start-up holds for the process's life.
        self.writing = logger.isEnabledFor(logging.INFO)
        self.metrics = metrics
        self._logger_name = logger.name
        self._json = json_format
        self._pid = os.getpid()  # a system call, so asked once
        self._prefix = f"INFO [{self._pid}] {logger.name}"

    @property
    def enabled(self) -> bool:
        return self.writing or self.metrics.enabled

    def add(
        self,
        client: str,
        method: str,
        route: str,
        status: int,
        length: int,  # the answer's bytes, headers included
        body_size: int,
        seconds: float,
        headers: Mapping[str, str],
        account: str | None,
        recording: str | None,
        request_id: str | None,
    ) -> None:
        if self.metrics.enabled:
            self.metrics.request_done(method, route, status, body_size, seconds)
        if not self.writing:
            return
        if self._json:
            _PENDING.add(
                json_line(
                    {
                        "time": utc_time(_time.time()),
                        "level": "INFO",
                        "logger": self._logger_name,
                        "pid": self._pid,
                        "message": f"{method} {route} {status}",
                        "request_id": request_id,
                        "client": client,
                        "method": method,
                        "route": route,
                        "status": status,
                        "bytes": length,
                        "duration_ms": round(seconds * 1000, 3),
                        "user_agent": headers.get(hdrs.USER_AGENT),
                        "range": headers.get(hdrs.RANGE),
                        "account_sid": account,
                        "recording_sid": recording,
                    }
                )
            )
            return
        known = ""
        if account is not None:
            known += f" account_sid={account}"
        if recording is not None:
            known += f" recording_sid={recording}"
        if (asked := headers.get(hdrs.RANGE)) is not None:
            known += f" range={_quoted(asked)}"
        _PENDING.add(
            f'{_PENDING.now()} {self._prefix} {client} "{method} {route}" '
            f"{status} {length} {seconds:.4f}s "
            f"{_quoted(headers.get(hdrs.USER_AGENT, '-'))}{known} "
            f"request_id={request_id or '-'}\n"
        )


class RouteAccessLog(AbstractAccessLogger):
    """aiohttp's access logger, writing `AccessLines`. aiohttp makes one per connection
    from a class and two arguments: `gateway_runner` gives a subclass the app's metrics."""

    metrics: Metrics = Metrics.off()

    def __init__(self, logger: logging.Logger, log_format: str) -> None:
        super().__init__(logger, log_format)
        self._lines = AccessLines(logger, log_format == "json", self.metrics)
        self._peer: str | None = None  # the connection's, worked out once

    @property
    def enabled(self) -> bool:
        return self._lines.enabled

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        client = request.get(CLIENT)  # set behind a trusted proxy
        if client is None:
            if self._peer is None:
                self._peer = request.remote or "-"
            client = self._peer
        self._lines.add(
            client,
            request.method,
            # Named by its route's guard; a request the parser refused never got that far.
            request.get(ROUTE, "(unparsed)"),
            response.status,
            response.body_length,
            _body_size(request, response),
            time,
            request.headers,
            request.get(ACCOUNT_SID),
            request.get(RECORDING_SID),
            request.get(REQUEST_ID),
        )


def _body_size(request: web.BaseRequest, response: web.StreamResponse) -> int:
    """The body's bytes, which aiohttp does not count apart from the headers': what the
    answer declared, once it was all sent (aiohttp notes a length only then)."""
    if not response.body_length or request.method == hdrs.METH_HEAD:
        return 0
    if response.status in (204, 304):
        return 0
    return response.content_length or 0
