"""How the byte pump reads storage: small pieces for a client that falls behind, so many
open players cost little memory; large ones for a download that keeps up."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from aiohttp import ClientSession, web
from aiohttp.test_utils import TestServer
from yarl import URL

from gateway.api.keys import STORE
from gateway.app import create_app
from gateway.config import Settings
from gateway.media import send
from gateway.models import Codec, Recording
from gateway.sids import mint
from gateway.storage import MediaReader, MediaStorage, open_storage
from tests.conftest import Clock
from tests.integration.test_media_download import media_link

SIZE = send.FAST_AFTER + 4 * send.LARGE_PIECE


@dataclass
class Asked:
    """Each read as (bytes the reader had already given, size asked for)."""

    reads: list[tuple[int, int]] = field(default_factory=list)


@dataclass
class RecordingReader:
    reader: MediaReader
    asked: Asked
    given: int = 0

    @property
    def start(self) -> int:
        return self.reader.start

    @property
    def end(self) -> int:
        return self.reader.end

    async def read(self, size: int) -> bytes:
        self.asked.reads.append((self.given, size))
        chunk = await self.reader.read(size)
        self.given += len(chunk)
        return chunk

    async def aclose(self) -> None:
        await self.reader.aclose()


@pytest.fixture
async def storage(settings: Settings) -> AsyncIterator[MediaStorage]:
    opened = await open_storage(settings)
    yield opened
    await opened.aclose()


@pytest.fixture
def asked(storage: MediaStorage, monkeypatch: pytest.MonkeyPatch) -> Asked:
    asked, open_ = Asked(), storage.open

    async def recording_open(key: str, start: int, end: int) -> MediaReader:
        return RecordingReader(await open_(key, start, end), asked)

    monkeypatch.setattr(storage, "open", recording_open)
    return asked


@pytest.fixture
def app(settings: Settings, clock: Clock, storage: MediaStorage) -> web.Application:
    # The pump, not sendfile: these readers are wrapped to watch what is asked of them.
    return create_app(settings, settings.signing_keys, now=clock, storage=storage, sendfile=False)


@pytest.fixture
async def payload() -> bytes:
    return await asyncio.to_thread(os.urandom, SIZE)


@pytest.fixture
async def large(
    app: web.Application,
    server: TestServer,
    storage: MediaStorage,
    ingested: dict[Codec, Recording],
    payload: bytes,
) -> Recording:
    """A recording a few MiB past FAST_AFTER; the pump never looks inside the bytes."""
    recording = ingested[Codec.VP8].replace(sid=mint("RT"), size=SIZE)
    recording = recording.replace(media_key=f"{recording.account_sid}/{recording.sid}.mkv")

    async def once() -> AsyncIterator[bytes]:
        yield payload

    await storage.put(recording.media_key or "", once())
    await app[STORE].add_recording(recording)
    return recording


async def test_a_download_that_keeps_up_is_read_in_large_pieces_past_fast_after(
    monkeypatch: pytest.MonkeyPatch,
    http: ClientSession,
    anonymous: ClientSession,
    base_url: str,
    large: Recording,
    payload: bytes,
    asked: Asked,
) -> None:
    monkeypatch.setattr(send, "FAST_RATE", 1)  # whatever this machine's speed, it keeps up
    async with anonymous.get(await media_link(http, base_url, large)) as response:
        assert response.status == 200
        assert await response.read() == payload
    assert asked.reads
    for given, size in asked.reads:
        assert size == (send.LARGE_PIECE if given >= send.FAST_AFTER else send.SMALL_PIECE)
    assert asked.reads[-1][1] == send.LARGE_PIECE


async def test_a_client_reading_slowly_keeps_small_pieces_to_the_end(
    http: ClientSession, base_url: str, large: Recording, payload: bytes, asked: Asked
) -> None:
    url = URL(await media_link(http, base_url, large))
    reader, writer = await asyncio.open_connection(url.host, url.port)
    writer.write(f"GET {url.raw_path_qs} HTTP/1.1\r\nHost: {url.host}\r\n\r\n".encode())
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    body = bytearray()
    while len(body) < SIZE:  # about 12 MiB/s, a fifth of FAST_RATE
        body += await reader.read(128 * 1024)
        await asyncio.sleep(0.01)
    writer.close()
    assert body == payload
    assert max(given for given, _ in asked.reads) >= send.FAST_AFTER
    assert {size for _, size in asked.reads} == {send.SMALL_PIECE}
