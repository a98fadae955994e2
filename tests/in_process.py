"""The gateway served in the test's own process, as `gateway serve` serves it: every
connection begins in the fast lane, which hands what it does not answer to aiohttp."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestServer
from aiohttp.web_runner import BaseRunner

from gateway.api.keys import SETTINGS
from gateway.api.server import gateway_runner


class GatewayTestServer(TestServer):
    async def _make_runner(self, **kwargs: Any) -> BaseRunner:
        settings = self.app[SETTINGS]
        return gateway_runner(
            self.app,
            header_timeout=settings.header_timeout,
            shutdown_grace=settings.shutdown_grace,
            handle_signals=False,
            log_format=settings.log_format,
            freeze=False,
            **kwargs,
        )
