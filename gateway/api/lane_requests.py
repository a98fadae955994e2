"""Which requests the fast lane takes, read strictly from their heads: `GET` or `HEAD`
of HTTP/1.1 to one of its two routes, a Host, no body, ASCII headers each named once,
and for `GET /media/…` one range of at most one write's bytes. Anything else is
aiohttp's, whose parser then reads the same bytes from the start."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Final

from multidict import CIMultiDict

from gateway.media.send import WHOLE_BODY

ISSUANCE_ROUTE: Final = "/v1/Recordings/{sid}/Media"
ROOM_ISSUANCE_ROUTE: Final = "/v1/Rooms/{room_sid}/Recordings/{sid}/Media"
MEDIA_ROUTE: Final = "/media/{token}"

# aiohttp's own limit on a request line or header: longer heads are its to refuse.
MAX_HEAD: Final = 8190
MAX_HEADERS: Final = 128

_HEAD: Final = re.compile(
    r"(GET|HEAD) (/[!-~]*) HTTP/1\.1"
    # RFC 9110 §5.1 field names; values of visible ASCII, spaces and tabs only.
    r"((?:\r\n[!#$%&'*+.^_`|~0-9A-Za-z-]+:[\t -~]*)*)"
)
_ISSUANCE: Final = re.compile(
    r"/v1/(?:Rooms/(RM[0-9a-f]{32})/)?Recordings/(RT[0-9a-f]{32})/Media"
    r"(?:\?([A-Za-z0-9_.~=&-]*))?"  # nothing percent-encoded, so nothing to decode
)
_MEDIA_LINK: Final = re.compile(r"/media/([A-Za-z0-9_.-]+)")
_SMALL_RANGE: Final = re.compile(r"bytes=([0-9]{1,15})-([0-9]{1,15})")
# Whose presence hands the request to aiohttp: a body's framing, protocol switches, and
# If-Range, which can turn a small range into a whole download.
_NOT_HERE: Final = frozenset(
    ("content-length", "transfer-encoding", "expect", "upgrade", "http2-settings", "if-range")
)


@dataclass(slots=True)
class LaneRequest:
    method: str
    route: str  # the template, for logs and metrics
    params: tuple[str | None, ...]
    headers: CIMultiDict[str]
    close: bool  # Connection: close
    started: float = 0.0
    client: str = "-"
    request_id: str = ""
    account_sid: str | None = None
    recording_sid: str | None = None
    cors: dict[str, str] = field(default_factory=dict)


def read_head(head: bytes | bytearray) -> LaneRequest | None:
    """The request `head` (its line and headers) asks, or None if it is not this lane's."""
    try:
        text = head.decode("ascii")
    except UnicodeDecodeError:
        return None
    whole = _HEAD.fullmatch(text)
    if whole is None:
        return None
    method, target, block = whole.groups()
    if issuance := _ISSUANCE.fullmatch(target):
        route = ROOM_ISSUANCE_ROUTE if issuance[1] else ISSUANCE_ROUTE
        params: tuple[str | None, ...] = issuance.groups()
    elif link := _MEDIA_LINK.fullmatch(target):
        route, params = MEDIA_ROUTE, (link[1],)
    else:
        return None
    fields = [line.split(":", 1) for line in block.split("\r\n")[1:]]
    names = {name.lower() for name, _ in fields}
    if len(names) != len(fields) or len(fields) > MAX_HEADERS or not names.isdisjoint(_NOT_HERE):
        return None
    if "host" not in names:
        return None  # RFC 9112 §3.2: a 400, which aiohttp's parser gives
    headers = CIMultiDict((name, value.strip(" \t")) for name, value in fields)
    connection = headers.get("Connection", "keep-alive").lower()
    if connection not in ("keep-alive", "close"):
        return None
    if route == MEDIA_ROUTE and method == "GET" and not _small(headers.get("Range")):
        return None  # a whole file, or a large part, goes out through aiohttp's streaming
    return LaneRequest(method, route, params, headers, connection == "close")


def _small(asked: str | None) -> bool:
    if asked is None or (explicit := _SMALL_RANGE.fullmatch(asked)) is None:
        return False
    first, last = int(explicit[1]), int(explicit[2])
    return first <= last < first + WHOLE_BODY


def may_be_ours(partial: bytearray) -> bool:
    """Whether a head still arriving may yet be this lane's: not once its request line
    names something else, nor once it is longer than aiohttp would take."""
    if len(partial) > MAX_HEAD:
        return False
    line_end = partial.find(b"\r\n")
    if line_end < 0:
        return True
    line = partial[:line_end]
    return line.startswith((b"GET /", b"HEAD /")) and line.endswith(b" HTTP/1.1")
