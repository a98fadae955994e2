"""Deleted recordings: media deletions retried, metadata purged after the retention."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterable, AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from aiohttp import ClientSession, web
from aiohttp.test_utils import TestServer

from gateway import janitor
from gateway.api.keys import INGESTION, STORAGE, STORE
from gateway.app import create_app
from gateway.config import Settings
from gateway.instants import utc
from gateway.janitor import LEFTOVER_AGE, remove_leftovers, sweep
from gateway.models import Account, Codec, Recording
from gateway.sids import mint
from gateway.storage import MediaReader, MediaStorage, open_storage
from tests.backends import stored
from tests.conftest import Clock
from tests.in_process import GatewayTestServer

RETENTION = 60.0


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return dataclasses.replace(settings, deleted_retention=RETENTION)


async def test_deleted_recording_is_readable_until_the_retention_then_404(
    app: web.Application,
    http: ClientSession,
    base_url: str,
    clock: Clock,
    ingested: dict[Codec, Recording],
    settings: Settings,
) -> None:
    target = ingested[Codec.OPUS]
    url = f"{base_url}/v1/Recordings/{target.sid}"
    async with http.delete(url) as response:
        assert response.status == 204

    async def janitor_at(seconds_later: float) -> None:
        moment = utc(clock() + seconds_later)
        await sweep(app[STORE], app[STORAGE], settings.deleted_retention, moment)

    await janitor_at(RETENTION - 5)
    async with http.get(url) as response:
        assert (await response.json())["status"] == "deleted"
    await janitor_at(RETENTION + 5)
    async with http.get(url) as response:
        assert response.status == 404
    async with http.get(f"{base_url}/v1/Recordings/{ingested[Codec.VP8].sid}") as response:
        assert response.status == 200  # the others are untouched


class FailsToDeleteOnce:
    """Storage whose first delete fails, as an S3 outage would make it."""

    def __init__(self, storage: MediaStorage) -> None:
        self.storage = storage
        self.failures_left = 1

    async def check(self) -> None:
        await self.storage.check()

    async def delete(self, key: str) -> None:
        if self.failures_left:
            self.failures_left -= 1
            raise ConnectionError("storage unreachable")
        await self.storage.delete(key)

    async def put(self, key: str, chunks: AsyncIterable[bytes]) -> int:
        return await self.storage.put(key, chunks)

    serves_files = False  # its readers go through the pump, whatever it wraps

    async def discard_unfinished(self, prefix: str) -> int:
        return await self.storage.discard_unfinished(prefix)

    async def open(self, key: str, start: int, end: int) -> MediaReader:
        return await self.storage.open(key, start, end)

    async def size_of(self, key: str) -> int:
        return await self.storage.size_of(key)

    def stored(self) -> AsyncIterator[tuple[str, datetime]]:
        return self.storage.stored()

    async def presign(
        self, key: str, ttl: int, content_type: str, content_disposition: str
    ) -> None:
        return None

    async def aclose(self) -> None:
        await self.storage.aclose()


@pytest.fixture
async def flaky_server(settings: Settings) -> AsyncIterator[TestServer]:
    flaky = FailsToDeleteOnce(await open_storage(settings))
    app = create_app(settings, settings.signing_keys, storage=flaky)
    async with GatewayTestServer(app, host="127.0.0.1") as server:
        yield server
    await flaky.aclose()


async def test_media_deletion_that_failed_is_retried_by_the_janitor(
    caplog: pytest.LogCaptureFixture,
    flaky_server: TestServer,
    settings: Settings,
    account: Account,
    http: ClientSession,
    media_files: dict[Codec, Path],
) -> None:
    app = flaky_server.app
    recording = await app[INGESTION].ingest(media_files[Codec.OPUS], account.sid)
    async with http.delete(flaky_server.make_url(f"/v1/Recordings/{recording.sid}")) as r:
        assert r.status == 204  # the recording is deleted, whatever storage said
    assert len(await asyncio.to_thread(stored, settings)) == 1
    assert any("later sweep" in record.getMessage() for record in caplog.records)

    # The app's start-up scan for leftovers holds the sweep lock while it runs; on a
    # slow machine it can still be running here, and then this sweep must wait its turn.
    for _ in range(50):
        done = await sweep(app[STORE], app[STORAGE], settings.deleted_retention, utc(0))
        if done.ran:
            break
        await asyncio.sleep(0.1)
    assert (done.ran, done.media_deleted, done.media_failed) == (True, 1, 0)
    assert await asyncio.to_thread(stored, settings) == []


@pytest.mark.parametrize("batch", [janitor.BATCH, 2])
async def test_leftover_media_no_recording_claims_is_removed_at_start_up(
    batch: int,
    monkeypatch: pytest.MonkeyPatch,
    app: web.Application,
    account: Account,
    ingested: dict[Codec, Recording],
    settings: Settings,
) -> None:
    monkeypatch.setattr(janitor, "BATCH", batch)  # 2: claims are looked up over several batches
    storage, store = app[STORAGE], app[STORE]
    kept = ingested[Codec.OPUS]
    orphans = [
        f"{account.sid}/{mint('RT')}.mka",  # stored, then the process died before recording it
        f"{account.sid}/{kept.sid}/0123abcd.mka",  # an upload its recording moved past
        f"{account.sid}/.{mint('RT')}.mka.0a1b.partial",  # a write cut off half way
    ]
    for key in [*orphans, "somebody-else/notes.txt"]:
        await storage.put(key, _bytes(b"media"))
    assert await remove_leftovers(store, storage, utc(time.time())) == 0  # all too recent
    later = utc(time.time()) + LEFTOVER_AGE + timedelta(minutes=1)
    assert await remove_leftovers(store, storage, later) == len(orphans)
    left = {key async for key, _ in storage.stored()}
    assert left == {r.media_key for r in ingested.values()} | {"somebody-else/notes.txt"}


async def _bytes(data: bytes) -> AsyncIterator[bytes]:
    yield data
