"""Which requests the fast lane answers itself: only those it can be strict about.
Everything else is aiohttp's, whose parser then reads the same bytes from the start."""

from __future__ import annotations

import pytest

from gateway.api.lane_requests import MAX_HEAD, may_be_ours, read_head
from gateway.media.send import WHOLE_BODY

RT = "RT" + "0123456789abcdef" * 2
RM = "RM" + "fedcba9876543210" * 2
ISSUE = f"GET /v1/Recordings/{RT}/Media HTTP/1.1\r\nHost: gateway\r\nAuthorization: Basic eDp5"
LINK = "GET /media/WyJSVDAiXQ.c2ln-_x HTTP/1.1\r\nHost: gateway"


@pytest.mark.parametrize(
    ("head", "route", "params"),
    [
        (ISSUE, "/v1/Recordings/{sid}/Media", (None, RT, None)),
        (
            ISSUE.replace("/Media", "/Media?Ttl=60&ContentDisposition=inline"),
            "/v1/Recordings/{sid}/Media",
            (None, RT, "Ttl=60&ContentDisposition=inline"),
        ),
        (
            ISSUE.replace("/v1/", f"/v1/Rooms/{RM}/"),
            "/v1/Rooms/{room_sid}/Recordings/{sid}/Media",
            (RM, RT, None),
        ),
        (ISSUE.replace("GET", "HEAD", 1), "/v1/Recordings/{sid}/Media", (None, RT, None)),
        (LINK + "\r\nRange: bytes=0-1023", "/media/{token}", ("WyJSVDAiXQ.c2ln-_x",)),
        (LINK + f"\r\nRange: bytes=10-{10 + WHOLE_BODY - 1}", "/media/{token}", None),
        (LINK.replace("GET", "HEAD", 1), "/media/{token}", None),  # no body, whatever its size
    ],
)
def test_the_hot_routes_are_taken(head: str, route: str, params: tuple[str, ...] | None) -> None:
    request = read_head(head.encode())
    assert request is not None
    assert request.route == route
    if params is not None:
        assert request.params == params


def test_header_values_lose_the_whitespace_around_them() -> None:
    request = read_head(f"{LINK}\r\nRange:\t bytes=0-9 \t\r\nuser-agent:  VLC/3.0".encode())
    assert request is not None
    assert request.headers["Range"] == "bytes=0-9"
    assert request.headers["User-Agent"] == "VLC/3.0"


@pytest.mark.parametrize(
    ("connection", "closes"), [("close", True), ("Keep-Alive", False), (None, False)]
)
def test_connection_close_is_noted(connection: str | None, closes: bool) -> None:
    head = ISSUE if connection is None else f"{ISSUE}\r\nConnection: {connection}"
    request = read_head(head.encode())
    assert request is not None
    assert request.close is closes


@pytest.mark.parametrize(
    "head",
    [
        # Another method, version or route
        ISSUE.replace("GET", "POST", 1),
        ISSUE.replace("GET", "get", 1),
        ISSUE.replace("HTTP/1.1", "HTTP/1.0"),
        ISSUE.replace("HTTP/1.1", "HTTP/2"),
        ISSUE.replace("/Media", ""),
        ISSUE.replace("/Media", "/Media/"),
        ISSUE.replace(RT, RT.upper().replace("RT", "RT", 1)),
        ISSUE.replace(RT, "RT123"),
        ISSUE.replace("/Recordings/", "/Recordings%2F"),
        ISSUE.replace("/Media", "/Media?Ttl=%36%30"),  # percent-encoded: aiohttp decodes it
        ISSUE.replace("/Media", "/Media?ContentDisposition=inline;+filename=a"),
        ISSUE.replace("/v1/", "/v1/Rooms/RMnot/"),
        LINK.replace(" HTTP", "?x=1 HTTP") + "\r\nRange: bytes=0-1",
        "GET /healthz HTTP/1.1\r\nHost: gateway",
        "GET  /healthz HTTP/1.1\r\nHost: gateway",
        # Headers out of the ordinary
        ISSUE + "\r\nX-Spaced : yes",
        ISSUE + "\r\n folded: continuation",
        ISSUE + "\r\nX-Folded: one\r\n two",
        ISSUE + "\r\n: no name",
        ISSUE + "\r\nX-Control: a\x01b",
        ISSUE + "\r\nX-Bare-LF: a\nb: c",
        ISSUE + "\r\nAuthorization: Basic eDp6",  # twice
        ISSUE + "\r\nhost: elsewhere",  # twice, in another case
        ISSUE.replace("Host: gateway\r\n", ""),  # none: RFC 9112 §3.2's 400 is aiohttp's
        ISSUE + "\r\nContent-Length: 0",
        ISSUE + "\r\nTransfer-Encoding: chunked",
        ISSUE + "\r\nExpect: 100-continue",
        ISSUE + "\r\nUpgrade: websocket\r\nConnection: Upgrade",
        ISSUE + "\r\nConnection: keep-alive, Upgrade",
        LINK + '\r\nRange: bytes=0-1\r\nIf-Range: "etag"',
        ISSUE + "".join(f"\r\nX-{n}: {n}" for n in range(127)),  # 129 headers
        # A media GET that may send more than one write's worth
        LINK,
        LINK + "\r\nRange: bytes=0-",
        LINK + "\r\nRange: bytes=-500",
        LINK + f"\r\nRange: bytes=0-{WHOLE_BODY}",
        LINK + "\r\nRange: bytes=0-1,5-9",
        LINK + "\r\nRange: bytes=9-1",
        LINK + "\r\nRange: BYTES=0-1",
        LINK + "\r\nRange: bytes=0-1023, ",
    ],
)
def test_anything_else_is_handed_over(head: str) -> None:
    assert read_head(head.encode()) is None


def test_a_head_that_is_not_ascii_is_handed_over() -> None:
    assert read_head((ISSUE + "\r\nUser-Agent: caf\u00e9").encode()) is None
    assert read_head((ISSUE + "\r\nUser-Agent: caf\u00e9").encode("latin-1")) is None


@pytest.mark.parametrize(
    ("partial", "may_be"),
    [
        (b"", True),
        (b"GE", True),
        (b"GET /media/abc HTTP/1.", True),
        (b"GET /media/abc HTTP/1.1\r\nRange: by", True),
        (b"POST /v1/Recordings HTTP/1.1\r\n", False),
        (b"GET /media/abc HTTP/1.0\r\n", False),
        (b"PRI * HTTP/2.0\r\n", False),
        (b"GET /" + b"a" * MAX_HEAD, False),
    ],
)
def test_a_head_still_arriving_is_handed_over_once_it_cannot_be_ours(
    partial: bytes, may_be: bool
) -> None:
    assert may_be_ours(bytearray(partial)) is may_be
