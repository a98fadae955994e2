"""The fast lane answers exactly as the application behind aiohttp does.

Every request of the table goes twice over raw connections: on a fresh one, which the
lane answers, and on one that has already asked for something else (`/healthz`) and
so was handed over to aiohttp. The two answers must be the same bytes but for what
differs by nature (Date, the request's id, and how the body is framed)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import ClientSession
from multidict import CIMultiDict
from yarl import URL

from gateway.api.fast_lane import FastLane
from gateway.models import Account, Codec, Recording
from gateway.sids import mint
from tests.conftest import Clock, basic_auth

FRAMING = frozenset(("date", "x-request-id", "content-length", "transfer-encoding"))


class FrozenClock(Clock):
    """Time that moves only when the test says, so that two answers given a moment
    apart carry the same expiry and max-age."""

    def __init__(self) -> None:
        super().__init__()
        self.start = time.time()

    def __call__(self) -> float:
        return self.start + self.skipped


@pytest.fixture
def clock() -> Clock:
    return FrozenClock()


@pytest.fixture
def handovers(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the connections the lane hands over to aiohttp."""
    counted: list[int] = []
    hand_over = FastLane._hand_over

    def counting(self: FastLane) -> None:
        counted.append(1)
        hand_over(self)

    monkeypatch.setattr(FastLane, "_hand_over", counting)
    return counted


@dataclass
class Answer:
    status: int
    headers: CIMultiDict[str]
    body: bytes

    def comparable(self) -> tuple[int, list[tuple[str, str]], bytes]:
        headers = [(name.lower(), value) for name, value in self.headers.items()]
        return self.status, sorted(h for h in headers if h[0] not in FRAMING), self.body


@dataclass
class Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    methods: list[str] = field(default_factory=list)  # of the requests not yet answered

    @classmethod
    async def to(cls, base_url: str) -> Connection:
        url = URL(base_url)
        reader, writer = await asyncio.open_connection(url.host, url.port)
        return cls(reader, writer)

    def send(self, *requests: bytes) -> None:
        for request in requests:
            self.methods.append(request.split(b" ", 1)[0].decode())
        self.writer.write(b"".join(requests))

    async def answer(self) -> Answer:
        method = self.methods.pop(0)
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), 10)
        status_line, *lines = head.decode("latin-1").split("\r\n")[:-2]
        headers = CIMultiDict(line.split(": ", 1) for line in lines)
        status = int(status_line.split(" ")[1])
        if method == "HEAD" or status == 304:
            body = b""
        elif "Content-Length" in headers:
            body = await self.reader.readexactly(int(headers["Content-Length"]))
        else:
            assert headers["Transfer-Encoding"] == "chunked", headers
            body = await self._chunked()
        return Answer(status, headers, body)

    async def _chunked(self) -> bytes:
        pieces = []
        while size := int((await self.reader.readuntil(b"\r\n"))[:-2], 16):
            pieces.append(await self.reader.readexactly(size))
            await self.reader.readexactly(2)
        await self.reader.readuntil(b"\r\n")
        return b"".join(pieces)

    async def closed_by_server(self) -> bool:
        return await asyncio.wait_for(self.reader.read(1), 10) == b""

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()


@dataclass
class Setting:
    """What the table's requests are made of."""

    host: str
    auth: str
    recording: Recording
    link: str  # the path of a signed link
    expired_link: str
    revoked_link: str
    deleted_sid: str
    etag: str
    last_modified: str
    last_bytes: str  # a range from ten bytes before the end to past it


def get(
    path: str, *headers: str, method: str = "GET", host: str | None = None
) -> Callable[[Setting], bytes]:
    def build(setting: Setting) -> bytes:
        lines = [f"{method} {path.format(s=setting)} HTTP/1.1", f"Host: {host or setting.host}"]
        lines += [header.format(s=setting) for header in headers]
        return ("\r\n".join(lines) + "\r\n\r\n").encode()

    return build


MEDIA = "/v1/Recordings/{s.recording.sid}/Media"
AUTH = "Authorization: {s.auth}"
WRONG = "Authorization: Basic " + base64.b64encode(b"ACnobody:wrong").decode()
RANGE = "Range: bytes=0-1023"
REQUESTS = {
    "issuance": get(MEDIA + "?Ttl=3600", AUTH),
    "issuance, default TTL": get(MEDIA, AUTH, "User-Agent: twilio-python/9"),
    "issuance, inline": get(MEDIA + "?ContentDisposition=inline", AUTH),
    "issuance in its room": get(
        "/v1/Rooms/{s.recording.room_sid}/Recordings/{s.recording.sid}/Media", AUTH
    ),
    "issuance in another room": get(
        f"/v1/Rooms/{mint('RM')}/Recordings/{{s.recording.sid}}/Media", AUTH
    ),
    "issuance, HEAD": get(MEDIA, AUTH, method="HEAD"),
    "issuance, wrong secret": get(MEDIA, WRONG),
    "issuance, no credentials": get(MEDIA),
    "issuance, unknown recording": get(f"/v1/Recordings/{mint('RT')}/Media", AUTH),
    "issuance, deleted recording": get("/v1/Recordings/{s.deleted_sid}/Media", AUTH),
    "issuance, Ttl=0": get(MEDIA + "?Ttl=0", AUTH),
    "issuance, Ttl=abc": get(MEDIA + "?Ttl=abc", AUTH),
    "issuance, Ttl twice": get(MEDIA + "?Ttl=60&Ttl=abc", AUTH),
    "issuance, host not allowed": get(MEDIA, AUTH, host="evil.example"),
    "issuance from a page": get(MEDIA, AUTH, "Origin: https://app.example"),
    "issuance, connection close": get(MEDIA, AUTH, "Connection: close"),
    "range": get("{s.link}", RANGE, "User-Agent: VLC/3.0.18 LibVLC/3.0.18"),
    "range at the end": get("{s.link}", "Range: bytes={s.last_bytes}"),
    "range past the end": get("{s.link}", "Range: bytes=999999990-999999999"),
    "whole, HEAD": get("{s.link}", method="HEAD"),
    "range, HEAD": get("{s.link}", RANGE, method="HEAD"),
    "range, If-None-Match hit": get("{s.link}", RANGE, "If-None-Match: {s.etag}"),
    "range, If-None-Match miss": get("{s.link}", RANGE, 'If-None-Match: "other"'),
    "range, If-Match miss": get("{s.link}", RANGE, 'If-Match: "other"'),
    "range, If-Modified-Since": get("{s.link}", RANGE, "If-Modified-Since: {s.last_modified}"),
    "range, If-Unmodified-Since": get(
        "{s.link}", RANGE, "If-Unmodified-Since: Sat, 01 Jan 2000 00:00:00 GMT"
    ),
    "range from a page": get("{s.link}", RANGE, "Origin: https://player.example"),
    "range, expired link": get("{s.expired_link}", RANGE),
    "range, tampered link": get("{s.link}x", RANGE),
    "range, revoked link": get("{s.revoked_link}", RANGE),
    "range, connection close": get("{s.link}", RANGE, "Connection: close"),
    "range, a request id from an untrusted peer": get("{s.link}", RANGE, "X-Request-Id: mine"),
}


async def issue(http: ClientSession, base_url: str, sid: str, ttl: int) -> str:
    url = f"{base_url}/v1/Recordings/{sid}/Media?Ttl={ttl}"
    async with http.get(url, allow_redirects=False) as response:
        assert response.status == 302, await response.text()
        return URL(response.headers["Location"]).path


@pytest.fixture
async def setting(
    base_url: str,
    account: Account,
    http: ClientSession,
    ingested: dict[Codec, Recording],
    clock: Clock,
) -> Setting:
    recording, deleted = ingested[Codec.VP8], ingested[Codec.OPUS]
    expired = await issue(http, base_url, recording.sid, 1)
    link = await issue(http, base_url, recording.sid, 3600)
    revoked = await issue(http, base_url, deleted.sid, 3600)
    async with http.delete(f"{base_url}/v1/Recordings/{deleted.sid}") as response:
        assert response.status == 204
    clock.advance(5)
    async with http.head(f"{base_url}{link}") as response:
        etag, last_modified = response.headers["ETag"], response.headers["Last-Modified"]
    return Setting(
        host=URL(base_url).raw_authority,
        auth=basic_auth(account.sid, account.auth_token)["Authorization"],
        recording=recording,
        last_bytes=f"{recording.size - 10}-{recording.size + 100}",
        link=link,
        expired_link=expired,
        revoked_link=revoked,
        deleted_sid=deleted.sid,
        etag=etag,
        last_modified=last_modified,
    )


@pytest.fixture
async def connect(base_url: str) -> AsyncIterator[Callable[[], Awaitable[Connection]]]:
    """Opens raw connections to the server, each closed at the test's end."""
    opened: list[Connection] = []

    async def connection() -> Connection:
        opened.append(await Connection.to(base_url))
        return opened[-1]

    yield connection
    for each in opened:
        await each.close()


@pytest.mark.parametrize("name", REQUESTS)
async def test_the_lane_answers_as_aiohttp_does(
    name: str,
    setting: Setting,
    connect: Callable[[], Awaitable[Connection]],
    handovers: list[int],
) -> None:
    request = REQUESTS[name](setting)
    handovers.clear()
    lane = await connect()
    lane.send(request)
    by_lane = await lane.answer()
    assert handovers == [], "the lane handed this request over"

    slow = await connect()
    slow.send(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n", request)
    assert (await slow.answer()).status == 200
    by_aiohttp = await slow.answer()
    assert handovers == [1]

    assert by_lane.status == EXPECTED[name]
    assert by_lane.comparable() == by_aiohttp.comparable()
    assert by_lane.headers["X-Request-Id"] != "mine"
    if "Content-Length" in by_aiohttp.headers:
        assert by_lane.headers["Content-Length"] == by_aiohttp.headers["Content-Length"]
    elif by_lane.status != 304:
        assert by_lane.headers["Content-Length"] == str(len(by_aiohttp.body))
    if "connection close" in name:
        assert by_lane.headers["Connection"] == "close"
        assert await lane.closed_by_server()


EXPECTED = {
    **dict.fromkeys((name for name in REQUESTS if name.startswith("issuance")), 302),
    "issuance in another room": 404,
    "issuance, wrong secret": 401,
    "issuance, no credentials": 401,
    "issuance, unknown recording": 404,
    "issuance, deleted recording": 404,
    "issuance, Ttl=0": 400,
    "issuance, Ttl=abc": 400,
    "issuance, host not allowed": 400,
    **dict.fromkeys((name for name in REQUESTS if name.startswith("range")), 206),
    "range past the end": 416,
    "whole, HEAD": 200,
    "range, If-None-Match hit": 304,
    "range, If-Match miss": 412,
    "range, If-Modified-Since": 304,
    "range, If-Unmodified-Since": 412,
    "range, expired link": 403,
    "range, tampered link": 403,
    "range, revoked link": 404,
}


def ranged(setting: Setting, first: int, last: int, version: str = "1.1") -> bytes:
    return (
        f"GET {setting.link} HTTP/{version}\r\nHost: {setting.host}\r\n"
        f"Range: bytes={first}-{last}\r\n\r\n"
    ).encode()


@pytest.fixture
def content(setting: Setting, media_files: dict[Codec, Path]) -> bytes:
    return media_files[Codec.VP8].read_bytes()


async def test_a_pipeline_of_both_lanes_is_answered_in_order(
    setting: Setting,
    content: bytes,
    connect: Callable[[], Awaitable[Connection]],
    handovers: list[int],
) -> None:
    issuance = REQUESTS["issuance"](setting)
    health = f"GET /healthz HTTP/1.1\r\nHost: {setting.host}\r\n\r\n".encode()
    connection = await connect()
    connection.send(ranged(setting, 0, 9), issuance, health, ranged(setting, 10, 19), issuance)
    answers = [await connection.answer() for _ in range(5)]
    assert [answer.status for answer in answers] == [206, 302, 200, 206, 302]
    assert (answers[0].body, answers[3].body) == (content[0:10], content[10:20])
    assert handovers == [1]  # at /healthz, for the rest of the connection


async def test_many_pipelined_ranges_unread_for_a_while_are_all_answered(
    setting: Setting,
    content: bytes,
    connect: Callable[[], Awaitable[Connection]],
    handovers: list[int],
) -> None:
    # Far more than the lane reads ahead or the transport buffers: it stops reading,
    # and answering, until the client reads.
    connection = await connect()
    connection.send(*(ranged(setting, n, n + 499) for n in range(2000)))
    await asyncio.sleep(0.5)
    for n in range(2000):
        answer = await connection.answer()
        assert (answer.status, answer.body) == (206, content[n : n + 500])
    assert handovers == []


async def test_a_head_arriving_in_pieces_is_answered(
    setting: Setting,
    content: bytes,
    connect: Callable[[], Awaitable[Connection]],
    handovers: list[int],
) -> None:
    request = ranged(setting, 100, 199)
    connection = await connect()
    connection.methods.append("GET")
    for piece in (request[:3], request[3:40], request[40:-1], request[-1:]):
        connection.writer.write(piece)
        await asyncio.sleep(0.05)
    answer = await connection.answer()
    assert (answer.status, answer.body) == (206, content[100:200])
    assert handovers == []


@pytest.mark.parametrize(
    ("extra", "status"),
    [
        # HTTP/1.0: aiohttp answers it, then closes (RFC 9112 §9.3).
        (None, 206),
        # A body, even on a GET, is aiohttp's to read.
        ("Content-Length: 3\r\n\r\nabc", 206),
    ],
)
async def test_what_the_lane_does_not_take_aiohttp_answers(
    setting: Setting,
    content: bytes,
    connect: Callable[[], Awaitable[Connection]],
    handovers: list[int],
    extra: str | None,
    status: int,
) -> None:
    if extra is None:
        request = ranged(setting, 0, 99, version="1.0")
    else:
        request = ranged(setting, 0, 99)[:-2] + extra.encode()
    connection = await connect()
    connection.send(request)
    answer = await connection.answer()
    assert (answer.status, answer.body) == (status, content[:100])
    assert handovers == [1]


async def test_a_request_without_host_is_refused(
    setting: Setting, connect: Callable[[], Awaitable[Connection]], handovers: list[int]
) -> None:
    connection = await connect()
    connection.send(f"GET {setting.link} HTTP/1.1\r\nRange: bytes=0-9\r\n\r\n".encode())
    answer = await connection.answer()
    # RFC 9112 §3.2: "A server MUST respond with a 400 (Bad Request) status code to any
    # HTTP/1.1 request message that lacks a Host header field".
    assert answer.status == 400
    assert answer.headers["Content-Type"] == "application/json; charset=utf-8"
    assert handovers == [1]
