"""Where recording media lives: the MediaStorage Protocol and `open_storage(url)`."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from datetime import datetime
from typing import Protocol

from gateway.config import Settings


class MediaReader(Protocol):
    """An open slice of one stored object, from `start` up to (not including) `end`."""

    start: int
    end: int

    async def read(self, size: int) -> bytes:
        """Up to `size` of the next bytes of the slice; b"" once it is all read."""
        ...

    async def aclose(self) -> None: ...


class FileBackedReader(MediaReader, Protocol):
    """A reader over a local file, which the byte pump may hand to `os.sendfile`."""

    fd: int


class MediaStorage(Protocol):
    # Whether its readers of more than 64 KiB are FileBackedReaders, which os.sendfile
    # can send; smaller slices are read whole, as the byte pump asks for them anyway.
    serves_files: bool

    async def check(self) -> None:
        """Raises unless the storage answers now and its bucket or folder is there."""
        ...

    async def put(self, key: str, chunks: AsyncIterable[bytes]) -> int:
        """Store all of `chunks` under `key`, all or nothing; the number of bytes stored."""
        ...

    async def discard_unfinished(self, prefix: str) -> int:
        """Remove what writers that are gone (a crash, a kill) left half-written under
        `prefix`: how many such uploads. Uploads still being written stay."""
        ...

    async def open(self, key: str, start: int, end: int) -> MediaReader:
        """Raises MediaMissing when there is no such object, StorageUnavailable on outage."""
        ...

    async def size_of(self, key: str) -> int:
        """The stored object's size, without reading it; raises as `open` does."""
        ...

    async def delete(self, key: str) -> None:
        """Deleting what is not there succeeds."""
        ...

    def stored(self) -> AsyncIterator[tuple[str, datetime]]:
        """Every object, finished or left half-written, with when it was last written."""
        ...

    async def presign(
        self, key: str, ttl: int, content_type: str, content_disposition: str
    ) -> str | None:
        """A URL the storage itself serves the object at for `ttl` seconds, if it can."""
        ...

    async def aclose(self) -> None: ...


async def open_storage(settings: Settings) -> MediaStorage:
    """The backend `settings.storage_url` names; each is imported only when chosen."""
    if settings.storage_url.startswith("s3://"):
        from gateway.storage.s3 import S3Storage

        return await S3Storage.create(settings)
    from gateway.storage.local import LocalStorage

    return await LocalStorage.create(settings.storage_path)
