"""HTTP/1.1 spoken byte by byte, for requests no well-behaved client library would send."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

from multidict import CIMultiDict
from yarl import URL


@dataclass(frozen=True, slots=True)
class RawResponse:
    status: int
    headers: CIMultiDict[str]
    body: bytes

    def json(self) -> Any:
        assert self.headers["Content-Type"].startswith("application/json"), self.headers
        return json.loads(self.body)


async def exchange(base_url: str, request: bytes) -> RawResponse:
    """Send `request` as it is and read the one response to it."""
    url = URL(base_url)
    reader, writer = await asyncio.open_connection(url.host, url.port)
    try:
        writer.write(request)
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        status_line, *lines = head.decode("latin-1").split("\r\n")[:-2]
        headers: CIMultiDict[str] = CIMultiDict(line.split(": ", 1) for line in lines)
        # A response to HEAD has no body, whatever its Content-Length (RFC 9110 §9.3.2).
        length = 0 if request.startswith(b"HEAD ") else int(headers.get("Content-Length", "0"))
        body = await reader.readexactly(length)
    finally:
        writer.close()
    return RawResponse(int(status_line.split(" ")[1]), headers, body)


def request(
    method: str, target: str, headers: dict[str, str] | None = None, *, host: str = "localhost"
) -> bytes:
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
