"""Media in a local folder: the embedded default."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import functools
import os
import secrets
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import IO, Final

from gateway.errors import MediaMissing, StorageUnavailable

# A file being written is named .{name}.{random}.partial until it is complete.
PARTIAL: Final = ".partial"
# Opening a file and reading this much of it is a few microseconds from the page cache,
# and bounded by a disk read or two when not: less than the hand-off to a thread and
# back costs. Larger reads stay in threads, so the loop never waits long.
READ_ON_LOOP: Final = 64 * 1024
# Small reads reuse the descriptors of files read in the last KEEP_OPEN seconds: opening
# and closing a file cost more than reading a 1 KiB range of it. They are all closed
# together every KEEP_OPEN seconds, so a deleted file's space comes back within that.
KEEP_OPEN: Final = 2.0
KEPT_FILES: Final = 256


@dataclass(slots=True)
class LocalMediaReader:
    fd: int  # a raw descriptor: pread and sendfile need nothing more
    start: int
    end: int
    position: int = field(init=False)

    def __post_init__(self) -> None:
        self.position = self.start

    async def read(self, size: int) -> bytes:
        size = min(size, self.end - self.position)
        if size <= 0:
            return b""
        # If the file shrank under us this is b"" early, and the response comes up short.
        if size <= READ_ON_LOOP:
            chunk = os.pread(self.fd, size, self.position)
        else:
            loop = asyncio.get_running_loop()
            chunk = await loop.run_in_executor(None, os.pread, self.fd, size, self.position)
        self.position += len(chunk)
        return chunk

    async def aclose(self) -> None:
        # Closing a file opened for reading flushes nothing, so it cannot block; and done
        # here rather than in a thread, it happens even when the handler is cancelled.
        os.close(self.fd)


@dataclass(slots=True)
class ReadAhead:
    """A small slice, read whole when it was opened."""

    data: bytes
    start: int
    end: int

    async def read(self, size: int) -> bytes:
        if size >= len(self.data):
            chunk, self.data = self.data, b""
        else:
            chunk, self.data = self.data[:size], self.data[size:]
        return chunk

    async def aclose(self) -> None:
        pass


class LocalStorage:
    serves_files = True

    def __init__(self, root: Path) -> None:
        self._root = root
        self._kept: dict[str, int] = {}
        self._closing_kept: asyncio.TimerHandle | None = None

    @classmethod
    async def create(cls, root: Path) -> LocalStorage:
        await asyncio.to_thread(root.mkdir, parents=True, exist_ok=True)
        return cls(await asyncio.to_thread(root.resolve))

    async def check(self) -> None:
        # An unmounted volume or a folder made read-only under us: no use serving.
        if not await asyncio.to_thread(os.access, self._root, os.W_OK | os.X_OK):
            raise StorageUnavailable(f"{self._root} is not a folder this process can write")

    @functools.lru_cache(maxsize=1024)  # noqa: B019 - one storage per process
    def _path(self, key: str) -> Path:
        relative = PurePosixPath(key)
        if relative.is_absolute() or ".." in relative.parts:
            raise ValueError(f"media key {key!r} leaves the storage folder")
        return self._root / relative

    async def put(self, key: str, chunks: AsyncIterable[bytes]) -> int:
        path = self._path(key)
        # Written beside its final name, then renamed: a reader never sees half a file.
        await asyncio.to_thread(path.parent.mkdir, parents=True, exist_ok=True)
        out, partial = await asyncio.to_thread(_open_partial, path)
        size = 0
        try:
            async for chunk in chunks:
                await asyncio.to_thread(out.write, chunk)
                size += len(chunk)
            await asyncio.to_thread(_finish, out, partial, path)
        except BaseException:
            await asyncio.to_thread(_discard, out, partial)
            raise
        self._forget_kept(key)  # what it replaced
        return size

    async def discard_unfinished(self, prefix: str) -> int:
        return await asyncio.to_thread(self._discard_unfinished, self._path(prefix))

    def _discard_unfinished(self, folder: Path) -> int:
        # A writer holds a lock on its partial file until it is renamed or removed, and
        # the kernel drops the lock with the process: an unlocked one is abandoned.
        discarded = 0
        for partial in folder.rglob(f".*{PARTIAL}"):
            with contextlib.suppress(FileNotFoundError), open(partial, "rb") as file:
                try:
                    fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # being written now
                partial.unlink()
                discarded += 1
        return discarded

    async def open(self, key: str, start: int, end: int) -> LocalMediaReader | ReadAhead:
        """A slice of up to READ_ON_LOOP is read at once, on the loop (as READ_ON_LOOP
        says why) from a kept descriptor; larger ones get a file of their own, which
        os.sendfile may send from (`serves_files`)."""
        try:
            if end - start <= READ_ON_LOOP:
                # Read before anything else runs on the loop, which is what may close it.
                return ReadAhead(os.pread(self._kept_open(key), end - start, start), start, end)
            fd = await asyncio.to_thread(os.open, self._path(key), os.O_RDONLY)
        except FileNotFoundError:
            raise MediaMissing(f"No media stored under {key}") from None
        return LocalMediaReader(fd, start, end)

    def _kept_open(self, key: str) -> int:
        fd = self._kept.get(key)
        if fd is None:
            fd = os.open(self._path(key), os.O_RDONLY)
            if len(self._kept) >= KEPT_FILES:
                self._close_kept()
            if self._closing_kept is None:
                loop = asyncio.get_running_loop()
                self._closing_kept = loop.call_later(KEEP_OPEN, self._close_kept)
            self._kept[key] = fd
        return fd

    def _forget_kept(self, key: str) -> None:
        # Only this process's: keys the service writes are never written twice, and
        # another process's deletion only frees the space KEEP_OPEN seconds later.
        if (fd := self._kept.pop(key, None)) is not None:
            os.close(fd)

    def _close_kept(self) -> None:
        if self._closing_kept is not None:
            self._closing_kept.cancel()
            self._closing_kept = None
        kept, self._kept = self._kept, {}
        for fd in kept.values():
            os.close(fd)

    async def size_of(self, key: str) -> int:
        try:
            return (await asyncio.to_thread(self._path(key).stat)).st_size
        except FileNotFoundError:
            raise MediaMissing(f"No media stored under {key}") from None

    async def delete(self, key: str) -> None:
        self._forget_kept(key)
        await asyncio.to_thread(self._path(key).unlink, missing_ok=True)

    async def stored(self) -> AsyncIterator[tuple[str, datetime]]:
        for key, modified in await asyncio.to_thread(self._walk):
            yield key, datetime.fromtimestamp(modified, UTC)

    def _walk(self) -> list[tuple[str, float]]:
        return [
            (path.relative_to(self._root).as_posix(), path.stat().st_mtime)
            for path in self._root.rglob("*")
            if path.is_file()
        ]

    async def presign(
        self, key: str, ttl: int, content_type: str, content_disposition: str
    ) -> str | None:
        return None  # a folder serves nothing by itself

    async def aclose(self) -> None:
        self._close_kept()


def _open_partial(path: Path) -> tuple[IO[bytes], Path]:
    """A new partial file beside `path`, locked for as long as it is open."""
    while True:
        partial = path.with_name(f".{path.name}.{secrets.token_hex(4)}{PARTIAL}")
        out = open(partial, "xb")  # noqa: SIM115  # closed by _finish or _discard
        fcntl.flock(out, fcntl.LOCK_EX)  # released as it closes, or as this process dies
        if os.fstat(out.fileno()).st_nlink:
            return out, partial
        out.close()  # discarded in the instant before it was locked: take another


def _finish(out: IO[bytes], partial: Path, path: Path) -> None:
    out.flush()
    os.fsync(out.fileno())
    os.replace(partial, path)  # while still locked, so nothing discards it first
    out.close()


def _discard(out: IO[bytes], partial: Path) -> None:
    out.close()
    partial.unlink(missing_ok=True)
