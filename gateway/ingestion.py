"""Recorders' use-cases: start a recording, upload its media, complete or fail it.

Each step is one compare-and-set on the recording, so a crash or a race between
steps never leaves a `completed` recording without checked media.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

from gateway import sids
from gateway.callbacks.events import announce
from gateway.errors import Conflict, InvalidParameter, MediaRejected, NotFound
from gateway.hosts import listed
from gateway.media.probe import Probe, probe, probe_stored
from gateway.metrics import Metrics
from gateway.models import Codec, Container, MediaType, Recording, Status
from gateway.storage import MediaStorage
from gateway.store import MetadataStore

log = logging.getLogger(__name__)

READ_CHUNK_SIZE: Final = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Declaration:
    """What a recorder says about a track before it sends it."""

    account_sid: str
    type: MediaType
    codec: Codec
    container_format: Container
    source_sid: str
    room_sid: str | None = None
    participant_sid: str | None = None
    track_name: str | None = None
    offset: int = 0
    status_callback: str | None = None
    status_callback_method: str | None = None


@dataclass(slots=True)
class Ingestion:
    store: MetadataStore
    storage: MediaStorage
    now: Callable[[], float] = field(default=time.time)
    # Hosts a status callback may name; empty, any (delivery still refuses internal ones).
    callback_allow: tuple[str, ...] = ()
    callback_written: Callable[[], None] = field(default=lambda: None)
    metrics: Metrics = field(default_factory=Metrics.off)

    async def start(self, declared: Declaration) -> Recording:
        if await self.store.get_account(declared.account_sid) is None:
            raise InvalidParameter("account_sid", f"no account {declared.account_sid}")
        host = urlsplit(declared.status_callback or "").hostname
        if host is not None and self.callback_allow and not listed(host, self.callback_allow):
            raise InvalidParameter("status_callback", f"{host} is not in GATEWAY_CALLBACK_ALLOW")
        created = datetime.fromtimestamp(self.now(), UTC)
        recording = Recording(
            sid=sids.mint("RT"),
            account_sid=declared.account_sid,
            status=Status.PROCESSING,
            date_created=created,
            date_updated=created,
            source_sid=declared.source_sid,
            type=declared.type,
            container_format=declared.container_format,
            codec=declared.codec,
            duration=0,
            size=0,
            track_name=declared.track_name or declared.source_sid,
            offset=declared.offset,
            room_sid=declared.room_sid,
            participant_sid=declared.participant_sid,
            status_callback=declared.status_callback,
            status_callback_method=declared.status_callback_method,
        )
        await self.store.add_recording(recording, announce(recording, created))
        self.callback_written()
        return recording

    async def ingest(
        self,
        path: Path,
        account_sid: str,
        *,
        room_sid: str | None = None,
        participant_sid: str | None = None,
        source_sid: str | None = None,
        track_name: str | None = None,
        offset: int = 0,
        codec: Codec | None = None,
        progress: Callable[[int], object] = lambda sent: None,
    ) -> Recording:
        """A finished Matroska file, handed in as a recorder would hand it in; probed
        first, so a file that is not a recording is refused with nothing stored."""
        for name, value, prefix in (
            ("room", room_sid, "RM"),
            ("participant", participant_sid, "PA"),
            ("source-sid", source_sid, "MT"),
        ):
            if value is not None and not sids.is_sid(value, prefix):
                raise InvalidParameter(name, f"must be a {prefix} SID")
        found = await asyncio.to_thread(probe, path)
        if codec is not None and codec is not found.codec:
            said = f"declared codec {codec} but the file holds {found.codec}"
            raise MediaRejected(f"{path.name}: {said}")
        declared = Declaration(
            account_sid, found.type, found.codec, found.container_format,
            source_sid or sids.mint("MT"), room_sid, participant_sid, track_name, offset,
        )  # fmt: skip
        started = await self.start(declared)
        try:
            uploaded = await self.upload(started.sid, _read(path, progress))
        except BaseException as exc:
            await asyncio.shield(self.fail(started.sid, f"upload failed: {exc!r}"))
            raise
        # Probed already, from the very bytes just stored: no need to read them back.
        return await self._end(
            uploaded, Status.COMPLETED, duration=found.duration, media_etag=media_etag(uploaded)
        )

    async def upload(self, sid: str, chunks: AsyncIterable[bytes]) -> Recording:
        """Store the media; a second upload replaces the first until the recording ends."""
        before = await self._processing(sid)
        # Each upload has its own key, so one still arriving can never overwrite media
        # that another step has already checked.
        folder = f"{before.account_sid}/{sid}/"
        # An upload cut off by a crash left its partial file or parts here; this one
        # replaces it.
        await self.storage.discard_unfinished(folder)
        key = f"{folder}{secrets.token_hex(8)}.{before.container_format}"
        size = await self.storage.put(key, chunks)
        uploaded = before.replace(media_key=key, size=size, date_updated=self._utcnow())
        if not await self.store.update_recording(uploaded, expected=before):
            await self.storage.delete(key)
            raise Conflict(f"Recording {sid} changed during the upload; upload again")
        self.metrics.upload_stored(size)
        if before.media_key is not None:
            await self._forget(before.media_key)
        return uploaded

    async def complete(self, sid: str) -> Recording:
        """Probe the stored media; `completed` if it is what was declared, else `failed`."""
        before = await self._processing(sid)
        if before.media_key is None:
            raise Conflict(f"Recording {sid} has no media yet; upload it first")
        if before.size == 0:
            return await self._end(
                before, Status.FAILED, failure_reason="the uploaded media is empty"
            )
        try:
            found = await probe_stored(self.storage, before.media_key, before.size)
            _check(before, found)
        except MediaRejected as rejected:
            return await self._end(before, Status.FAILED, failure_reason=rejected.message)
        return await self._end(
            before, Status.COMPLETED, duration=found.duration, media_etag=media_etag(before)
        )

    async def fail(self, sid: str, reason: str) -> Recording:
        before = await self._processing(sid)
        return await self._end(before, Status.FAILED, failure_reason=reason or "failed")

    async def _end(self, before: Recording, status: Status, **changes: object) -> Recording:
        now = self._utcnow()
        after = before.replace(status=status, date_updated=now, **changes)
        if not await self.store.update_recording(after, before, announce(after, now)):
            raise Conflict(f"Recording {before.sid} changed meanwhile; fetch it and retry")
        self.callback_written()
        return after

    async def _processing(self, sid: str) -> Recording:
        recording = await self.store.get_recording(sid) if sids.is_sid(sid, "RT") else None
        if recording is None:
            raise NotFound(f"The requested resource /Recordings/{sid} was not found")
        if recording.status is not Status.PROCESSING:
            raise Conflict(f"Recording {sid} is {recording.status}, no longer processing")
        return recording

    async def _forget(self, key: str) -> None:
        try:
            await self.storage.delete(key)
        except Exception:
            log.exception("replaced upload %s could not be deleted", key)

    def _utcnow(self) -> datetime:
        return datetime.fromtimestamp(self.now(), UTC)


def _check(declared: Recording, found: Probe) -> None:
    for name, said, is_ in (
        ("codec", declared.codec, found.codec),
        ("type", declared.type, found.type),
        ("container_format", declared.container_format, found.container_format),
    ):
        if said != is_:
            raise MediaRejected(f"declared {name} {said} but the media holds {is_}")


def media_etag(uploaded: Recording) -> str:
    # Each upload has a key of its own and what is stored under a key never changes,
    # so the key names the bytes as well as a hash of them would, at no cost.
    return f'"{hashlib.sha256((uploaded.media_key or "").encode()).hexdigest()[:32]}"'


async def _read(path: Path, progress: Callable[[int], object]) -> AsyncIterator[bytes]:
    file = await asyncio.to_thread(path.open, "rb")
    try:
        while chunk := await asyncio.to_thread(file.read, READ_CHUNK_SIZE):
            progress(len(chunk))
            yield chunk
    finally:
        await asyncio.to_thread(file.close)
