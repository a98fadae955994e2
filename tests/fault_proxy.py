"""A small HTTP proxy that misbehaves on purpose, in front of a real source: rate
limits, server errors and downloads cut midway, each as many times as a test says."""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter
from dataclasses import dataclass, field

from aiohttp import ClientSession, web


@dataclass
class Faults:
    # Answer this many list requests with 429 and Retry-After first.
    rate_limited: int = 0
    retry_after: str = "1"
    # Answer this many /Media requests with 500 first (across recordings).
    server_errors: int = 0
    # Media downloads (without a Range) cut after half their bytes, this many times.
    cuts: int = 0
    # /Media of these recordings always answers 500.
    always_failing: set[str] = field(default_factory=set)
    # Slow media: seconds between pieces of 16 KiB (for a kill mid-run).
    media_delay: float = 0.0


class FaultProxy:
    def __init__(self, upstream: str, faults: Faults) -> None:
        self.upstream, self.faults = upstream.rstrip("/"), faults
        self.seen: Counter[str] = Counter()
        # When each list request arrived, and when a 429 was given.
        self.list_times: list[float] = []
        self.limited_at: list[float] = []
        self.ranges: list[str] = []
        self.authorized_media = 0  # media downloads that carried credentials
        self.media_sent = 0  # media downloads sent whole
        self.media_streaming = 0  # slow media downloads under way

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{path:.*}", self.handle)
        return app

    async def handle(self, request: web.Request) -> web.StreamResponse:
        path, faults = request.path, self.faults
        if path == "/v1/Recordings" and request.method == "GET":
            self.list_times.append(time.monotonic())
            if faults.rate_limited:
                faults.rate_limited -= 1
                self.limited_at.append(time.monotonic())
                self.seen["429"] += 1
                return web.json_response(
                    {"code": 20429, "message": "Too Many Requests", "status": 429},
                    status=429, headers={"Retry-After": faults.retry_after},
                )  # fmt: skip
        media = re.fullmatch(r"/v1/Recordings/(RT\w+)/Media", path)
        if media is not None and (media[1] in faults.always_failing or faults.server_errors):
            if media[1] not in faults.always_failing:
                faults.server_errors -= 1
            self.seen["500"] += 1
            return web.json_response({"code": 20500, "status": 500}, status=500)
        if path.startswith("/media/"):
            if "Authorization" in request.headers:
                self.authorized_media += 1
            if "Range" in request.headers:
                self.ranges.append(request.headers["Range"])
        return await self._forward(request)

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        headers = {k: v for k, v in request.headers.items() if k.lower() != "host"}
        headers["Host"] = request.host  # links the source builds name the proxy
        async with ClientSession(auto_decompress=False) as http:
            async with http.request(
                request.method, f"{self.upstream}{request.path_qs}", headers=headers,
                data=await request.read(), allow_redirects=False,
            ) as upstream:  # fmt: skip
                body = await upstream.read()
                answer = web.StreamResponse(status=upstream.status)
                for name, value in upstream.headers.items():
                    if name.lower() not in ("transfer-encoding", "connection", "date", "server"):
                        answer.headers[name] = value
                cut = (
                    request.path.startswith("/media/")
                    and upstream.status == 200
                    and self.faults.cuts > 0
                )
                await answer.prepare(request)
                if cut:
                    self.faults.cuts -= 1
                    self.seen["cut"] += 1
                    await answer.write(body[: len(body) // 2])
                    await asyncio.sleep(0.05)
                    assert request.transport is not None
                    request.transport.abort()  # the client sees a short body
                    return answer
                if self.faults.media_delay and request.path.startswith("/media/"):
                    self.media_streaming += 1
                    try:
                        for start in range(0, len(body), 16384):
                            await answer.write(body[start : start + 16384])
                            await asyncio.sleep(self.faults.media_delay)
                    finally:
                        self.media_streaming -= 1
                else:
                    await answer.write(body)
                await answer.write_eof()
                if request.path.startswith("/media/"):
                    self.media_sent += 1
                return answer
