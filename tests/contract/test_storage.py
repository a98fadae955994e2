"""The MediaStorage contract, written once and run on every backend."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.config import Settings
from gateway.errors import MediaMissing
from gateway.storage import MediaStorage, open_storage

PAYLOAD = os.urandom(1_000_003)


@pytest.fixture(params=["local"])
async def storage(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[MediaStorage]:
    opened = await open_storage(Settings(storage_url=str(tmp_path / "media")))
    yield opened
    await opened.aclose()


async def chunks_of(data: bytes, size: int = 100_000) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def read(storage: MediaStorage, key: str, start: int, end: int) -> list[bytes]:
    reader = await storage.open(key, start, end)
    try:
        return [chunk async for chunk in reader.chunks()]
    finally:
        await reader.aclose()


async def test_put_then_open_gives_back_exact_bytes(storage: MediaStorage) -> None:
    assert await storage.put("AC1/RT1.mka", chunks_of(PAYLOAD)) == len(PAYLOAD)
    assert b"".join(await read(storage, "AC1/RT1.mka", 0, len(PAYLOAD))) == PAYLOAD


@pytest.mark.parametrize(("start", "end"), [(0, 1), (500_000, 500_010), (999_000, 1_000_003)])
async def test_open_reads_exactly_the_slice(storage: MediaStorage, start: int, end: int) -> None:
    await storage.put("k.mka", chunks_of(PAYLOAD))
    assert b"".join(await read(storage, "k.mka", start, end)) == PAYLOAD[start:end]


async def test_reads_come_in_bounded_chunks(storage: MediaStorage) -> None:
    await storage.put("k.mka", chunks_of(PAYLOAD))
    chunks = await read(storage, "k.mka", 0, len(PAYLOAD))
    assert len(chunks) > 1
    assert max(len(chunk) for chunk in chunks) <= 1024 * 1024


async def test_failed_put_leaves_nothing_behind(storage: MediaStorage, tmp_path: Path) -> None:
    async def breaks_halfway() -> AsyncIterator[bytes]:
        yield PAYLOAD[:1000]
        raise ConnectionResetError("recorder went away")

    with pytest.raises(ConnectionResetError):
        await storage.put("AC1/broken.mka", breaks_halfway())
    with pytest.raises(MediaMissing):
        await storage.open("AC1/broken.mka", 0, 1000)
    assert [p for p in (tmp_path / "media").rglob("*") if p.is_file()] == []


async def test_put_replaces_an_existing_object(storage: MediaStorage) -> None:
    await storage.put("k.mka", chunks_of(b"old contents"))
    await storage.put("k.mka", chunks_of(b"new"))
    assert b"".join(await read(storage, "k.mka", 0, 3)) == b"new"


async def test_deleted_object_is_missing_and_deleting_again_succeeds(
    storage: MediaStorage,
) -> None:
    await storage.put("k.mka", chunks_of(b"data"))
    await storage.delete("k.mka")
    with pytest.raises(MediaMissing):
        await storage.open("k.mka", 0, 4)
    await storage.delete("k.mka")


@pytest.mark.parametrize("key", ["../escape.mka", "/etc/passwd", "a/../../b.mka"])
async def test_keys_cannot_leave_the_storage(storage: MediaStorage, key: str) -> None:
    with pytest.raises(ValueError, match="leaves"):
        await storage.put(key, chunks_of(b"x"))
