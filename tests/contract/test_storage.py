"""The MediaStorage contract, written once and run on every backend."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gateway.config import Settings
from gateway.errors import MediaMissing
from gateway.storage import MediaStorage, open_storage
from tests.backends import stored

PAYLOAD = os.urandom(1_000_003)


@pytest.fixture(params=["local", "s3"])
def storage_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    if request.param == "s3":
        return Settings.from_env(
            {
                "GATEWAY_STORAGE_URL": f"s3://{request.getfixturevalue('s3_bucket')}/media",
                "GATEWAY_S3_ENDPOINT_URL": request.getfixturevalue("s3_endpoint"),
            }
        )
    return Settings.from_env({"GATEWAY_STORAGE_URL": str(tmp_path / "media")})


@pytest.fixture
async def storage(storage_settings: Settings) -> AsyncIterator[MediaStorage]:
    opened = await open_storage(storage_settings)
    yield opened
    await opened.aclose()


async def chunks_of(data: bytes, size: int = 100_000) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def read(storage: MediaStorage, key: str, start: int, end: int) -> list[bytes]:
    reader = await storage.open(key, start, end)
    try:
        pieces = []
        while piece := await reader.read(100_000):
            assert len(piece) <= 100_000
            pieces.append(piece)
        return pieces
    finally:
        await reader.aclose()


async def test_put_then_open_gives_back_exact_bytes(storage: MediaStorage) -> None:
    assert await storage.put("AC1/RT1.mka", chunks_of(PAYLOAD)) == len(PAYLOAD)
    assert b"".join(await read(storage, "AC1/RT1.mka", 0, len(PAYLOAD))) == PAYLOAD


@pytest.mark.parametrize(("start", "end"), [(0, 1), (500_000, 500_010), (999_000, 1_000_003)])
async def test_open_reads_exactly_the_slice(storage: MediaStorage, start: int, end: int) -> None:
    await storage.put("k.mka", chunks_of(PAYLOAD))
    assert b"".join(await read(storage, "k.mka", start, end)) == PAYLOAD[start:end]


async def test_each_read_returns_at_most_what_was_asked(storage: MediaStorage) -> None:
    await storage.put("k.mka", chunks_of(PAYLOAD))
    reader = await storage.open("k.mka", 0, len(PAYLOAD))
    chunks, sizes = [], itertools.cycle([1, 4096, 65_536, 1024 * 1024])
    try:
        while chunk := await reader.read(asked := next(sizes)):
            assert len(chunk) <= asked
            chunks.append(chunk)
    finally:
        await reader.aclose()
    assert b"".join(chunks) == PAYLOAD
    assert len(chunks) > 1
    assert max(len(chunk) for chunk in chunks) <= 1024 * 1024


@pytest.mark.parametrize("before_failing", [1000, 20 * 1024 * 1024], ids=["small", "multipart"])
async def test_failed_put_leaves_nothing_behind(
    storage_settings: Settings, storage: MediaStorage, before_failing: int
) -> None:
    async def breaks_after_a_while() -> AsyncIterator[bytes]:
        for start in range(0, before_failing, 1024 * 1024):
            yield os.urandom(min(1024 * 1024, before_failing - start))
        raise ConnectionResetError("recorder went away")

    with pytest.raises(ConnectionResetError):
        await storage.put("AC1/broken.mka", breaks_after_a_while())
    with pytest.raises(MediaMissing):
        await storage.open("AC1/broken.mka", 0, 1000)
    assert await asyncio.to_thread(stored, storage_settings) == []


async def test_large_put_round_trips(storage: MediaStorage) -> None:
    large = os.urandom(3 * 8 * 1024 * 1024 + 12345)  # three full parts and a short one
    assert await storage.put("AC1/large.mkv", chunks_of(large, 1024 * 1024)) == len(large)
    assert await storage.size_of("AC1/large.mkv") == len(large)
    tail = await read(storage, "AC1/large.mkv", len(large) - 100_000, len(large))
    assert b"".join(tail) == large[-100_000:]


async def test_put_replaces_an_existing_object(storage: MediaStorage) -> None:
    await storage.put("k.mka", chunks_of(b"old contents"))
    assert b"".join(await read(storage, "k.mka", 0, 3)) == b"old"
    await storage.put("k.mka", chunks_of(b"new"))
    assert b"".join(await read(storage, "k.mka", 0, 3)) == b"new"


async def test_local_files_read_lately_are_let_go_of_soon(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Small reads keep files open for a moment; one that another process deleted must
    # not keep its disk space for longer than that.
    monkeypatch.setattr("gateway.storage.local.KEEP_OPEN", 0.2)
    settings = Settings.from_env({"GATEWAY_STORAGE_URL": str(tmp_path / "media")})
    here, elsewhere = await open_storage(settings), await open_storage(settings)
    try:
        await here.put("k.mka", chunks_of(PAYLOAD))
        assert b"".join(await read(here, "k.mka", 0, 1024)) == PAYLOAD[:1024]
        path = str(tmp_path / "media" / "k.mka")
        assert path in open_files()
        await elsewhere.delete("k.mka")
        await asyncio.sleep(0.5)
        assert not [name for name in open_files() if name.startswith(path)]
    finally:
        await here.aclose()
        await elsewhere.aclose()


def open_files() -> list[str]:
    names = []
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(FileNotFoundError):  # the listing's own, closed by now
            names.append(os.readlink(f"/proc/self/fd/{fd}"))
    return names


async def test_deleted_object_is_missing_and_deleting_again_succeeds(
    storage: MediaStorage,
) -> None:
    await storage.put("k.mka", chunks_of(b"data"))
    assert await storage.size_of("k.mka") == 4
    await storage.delete("k.mka")
    with pytest.raises(MediaMissing):
        await storage.open("k.mka", 0, 4)
    with pytest.raises(MediaMissing):
        await storage.size_of("k.mka")
    await storage.delete("k.mka")


@pytest.mark.parametrize("key", ["../escape.mka", "/etc/passwd", "a/../../b.mka"])
async def test_keys_cannot_leave_the_storage(
    storage_settings: Settings, storage: MediaStorage, key: str
) -> None:
    if storage_settings.storage_url.startswith("s3://"):
        pytest.skip("S3 keys are opaque strings; there is no folder to leave")
    with pytest.raises(ValueError, match="leaves"):
        await storage.put(key, chunks_of(b"x"))


async def test_stored_lists_every_object_with_when_it_was_written(storage: MediaStorage) -> None:
    before = datetime.now(UTC) - timedelta(minutes=5)
    for key in ("AC1/RT1.mka", "AC1/RT2/upload.mkv"):
        await storage.put(key, chunks_of(b"data"))
    listed = {key: when async for key, when in storage.stored()}
    assert set(listed) == {"AC1/RT1.mka", "AC1/RT2/upload.mkv"}
    assert all(before < when < before + timedelta(minutes=10) for when in listed.values())


async def test_discard_unfinished_keeps_uploads_in_flight_and_finished_objects(
    storage: MediaStorage,
) -> None:
    await storage.put("AC1/RT1/done.mkv", chunks_of(b"finished"))
    release = asyncio.Event()

    async def held_open() -> AsyncIterator[bytes]:
        yield b"x" * 9_000_000  # past S3's 8 MiB first part: a multipart upload in flight
        await release.wait()
        yield b"rest"

    writing = asyncio.create_task(storage.put("AC1/RT1/live.mkv", held_open()))
    await asyncio.sleep(0.5)
    assert await storage.discard_unfinished("AC1/RT1/") == 0
    assert await storage.discard_unfinished("") == 0
    release.set()
    assert await writing == 9_000_004
    assert await storage.size_of("AC1/RT1/done.mkv") == len(b"finished")


async def test_discard_unfinished_removes_a_dead_writers_partial_file_under_the_prefix_only(
    storage_settings: Settings, storage: MediaStorage
) -> None:
    if storage_settings.storage_url.startswith("s3://"):
        pytest.skip("S3 cannot tell a dead writer's upload from a live one under a day old")
    root = storage_settings.storage_path
    dead = root / "AC1" / "RT1" / ".abc.mkv.0000.partial"  # no process holds its lock
    other = root / "AC1" / "RT2" / ".abc.mkv.0000.partial"
    for path in (dead, other):
        path.parent.mkdir(parents=True)
        path.write_bytes(b"half a recording")
    assert await storage.discard_unfinished("AC1/RT1/") == 1
    assert not dead.exists()
    assert other.exists()
    assert await storage.discard_unfinished("") == 1
    assert not other.exists()
