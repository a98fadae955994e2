"""`gateway import twilio`: a Twilio account's recordings brought here with the same
SIDs, the same JSON and the same bytes; run again, only what is missing or changed.

Each recording is written here in one step, after its media is stored and probed: a
run cut off anywhere leaves at most media no recording claims (the janitor's leftover
sweep removes it), never a completed recording without media. So running again after
any failure converges to what one uninterrupted run gives."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

from gateway import sids
from gateway.errors import GatewayError, MediaRejected
from gateway.ingestion import media_etag
from gateway.janitor import forget_media
from gateway.media.probe import probe_stored
from gateway.models import Account, Codec, Container, MediaType, Recording, Status
from gateway.storage import MediaStorage
from gateway.store import MetadataStore
from gateway.twilio_import.decrypt import CannotDecrypt, decrypted
from gateway.twilio_import.source import Source, SourceError

log = logging.getLogger(__name__)

STATUSES = ("completed", "deleted", "failed", "processing")


@dataclass
class Summary:
    dry_run: bool
    imported: int = 0  # completed, with their media
    metadata_only: int = 0  # deleted or failed at the source: nothing to download
    already_here: int = 0
    deleted_here: int = 0  # deleted at the source since an earlier run
    bytes: int = 0  # media bytes imported (or, dry, to import)
    skipped: list[dict[str, str]] = field(default_factory=list)
    failed: list[dict[str, str]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class Progress:
    """What a run reports as it goes (a progress bar, or nothing): the totals once the
    list is read, then each recording done and each piece of media as it arrives."""

    def planned(self, recordings: int, media_bytes: int) -> None:
        pass

    def advanced(self, recordings: int, media_bytes: int) -> None:
        pass


@dataclass
class Importer:
    source: Source
    store: MetadataStore
    storage: MediaStorage
    dry_run: bool = False
    concurrency: int = 4
    decrypt_key: RSAPrivateKey | None = None
    progress: Progress = field(default_factory=Progress)
    now: Callable[[], float] = time.time

    async def run(self, filters: dict[str, Any]) -> Summary:
        summary = Summary(self.dry_run)
        # The whole list first, so progress has a total and an ETA; a recording's
        # metadata is a few hundred bytes, so even a large archive's list is small.
        listed: list[Recording] = []
        try:
            async for found in self._walk(filters):
                try:
                    listed.append(self._recording(found))
                except (SourceError, ValueError) as exc:
                    summary.failed.append({"sid": str(found.sid), "reason": _reason(exc)})
        except SourceError as exc:
            summary.failed.append({"sid": "(listing)", "reason": exc.message})
            return summary
        wanted = [r for r in listed if r.status is Status.COMPLETED]
        self.progress.planned(len(listed), sum(r.size for r in wanted))
        if not self.dry_run:
            await self._ensure_account()
        pending = iter(listed)

        async def work() -> None:
            for recording in pending:  # shared: each worker takes the next one
                try:
                    await self._one(recording, summary)
                except (GatewayError, OSError) as exc:
                    summary.failed.append({"sid": recording.sid, "reason": _reason(exc)})
                except Exception as exc:  # one recording's surprise must not end the run
                    log.exception("importing %s failed", recording.sid)
                    summary.failed.append({"sid": recording.sid, "reason": _reason(exc)})
                self.progress.advanced(1, 0)

        await asyncio.gather(*(work() for _ in range(self.concurrency)))
        return summary

    async def _walk(self, filters: dict[str, Any]) -> AsyncIterator[Any]:
        # One listing per status, so deleted ones come too, whichever the source hides
        # by default.
        wanted = [filters["status"]] if "status" in filters else list(STATUSES)
        for status in wanted:
            async for found in self.source.recordings(**{**filters, "status": status}):
                yield found

    async def _ensure_account(self) -> None:
        credentials = self.source.credentials
        if await self.store.get_account(credentials.account_sid) is not None:
            return
        # The account's own token keeps applications' credentials working; an API key's
        # secret cannot stand in for it, so the account gets a token nobody knows yet.
        token = credentials.password if credentials.is_auth_token else secrets.token_hex(16)
        account = Account(credentials.account_sid, "Imported from Twilio", token, self._utcnow())
        await self.store.add_account(account)

    async def _one(self, listed: Recording, summary: Summary) -> None:
        if listed.status is Status.PROCESSING:
            summary.skipped.append({"sid": listed.sid, "reason": "still processing at the source"})
            return
        here = await self.store.get_recording(listed.sid)
        if here is not None:
            await self._again(listed, here, summary)
            return
        if listed.status is not Status.COMPLETED:
            if not self.dry_run:
                await self.store.add_recording(listed)
            summary.metadata_only += 1
            return
        if self.dry_run:
            summary.imported += 1
            summary.bytes += listed.size
            return
        recording = await self._with_media(listed)
        await self.store.add_recording(recording)
        summary.imported += 1
        summary.bytes += recording.size

    async def _again(self, listed: Recording, here: Recording, summary: Summary) -> None:
        """A recording an earlier run brought: deleted here if it was at the source."""
        if listed.status is Status.DELETED and here.status is not Status.DELETED:
            if not self.dry_run:
                deleted = await self.store.mark_deleted(here.sid, self._utcnow())
                if deleted is not None:
                    await forget_media(self.store, self.storage, deleted)
            summary.deleted_here += 1
            return
        summary.already_here += 1

    def _recording(self, found: Any) -> Recording:
        """The source's recording as it is to be kept here; ValueError for what this
        service cannot keep (a codec or type it does not know)."""
        grouping = found.grouping_sids or {}
        created = found.date_created
        if not isinstance(created, datetime):
            raise SourceError(f"{found.sid}: date_created {created!r} is not a date")
        return Recording(
            sid=_sid(found.sid, "RT"),
            account_sid=_sid(found.account_sid, "AC"),
            status=Status(found.status),
            date_created=created,
            # Retention of a deleted one counts from its arrival here.
            date_updated=self._utcnow(),
            source_sid=found.source_sid,
            type=MediaType(found.type),
            container_format=Container(found.container_format),
            codec=Codec(found.codec),
            duration=found.duration,
            size=found.size or 0,
            track_name=found.track_name,
            offset=found.offset or 0,
            room_sid=grouping.get("room_sid"),
            participant_sid=grouping.get("participant_sid"),
            status_callback=found.status_callback,
            status_callback_method=found.status_callback_method,
            media_external_location=found.media_external_location,
        )

    async def _with_media(self, recording: Recording) -> Recording:
        """Store the media, probe it, and only then hand back the recording naming it."""
        media = await self.source.media(recording.sid)
        folder = f"{recording.account_sid}/{recording.sid}/"
        # A run killed midway left this recording's half-written file or multipart
        # upload here: gone before this one starts, as a recorder's second upload does.
        await self.storage.discard_unfinished(folder)
        key = f"{folder}{secrets.token_hex(8)}.{recording.container_format.value}"

        async def plaintext() -> AsyncIterator[bytes]:
            pieces = _counted(media.chunks(), self.progress)
            first = await anext(pieces, b"")
            if media.encryption is None:
                yield first
                async for piece in pieces:
                    yield piece
                return
            if self.decrypt_key is None:
                raise CannotDecrypt("the media is encrypted with a customer key: pass "
                                    "--decrypt-key with the account's RSA private key")  # fmt: skip
            wrapped, iv = media.encryption
            async for piece in decrypted(_chained(first, pieces), self.decrypt_key, wrapped, iv):
                yield piece

        size = await self.storage.put(key, plaintext())
        try:
            found = await probe_stored(self.storage, key, size)
            for name, said, holds in (
                ("codec", recording.codec, found.codec),
                ("type", recording.type, found.type),
            ):
                if said != holds:
                    raise MediaRejected(f"the source says {name} {said}; the media holds {holds}")
        except BaseException:
            await self.storage.delete(key)
            raise
        stored = recording.replace(media_key=key, size=size)
        return stored.replace(media_etag=media_etag(stored))

    def _utcnow(self) -> datetime:
        return datetime.fromtimestamp(self.now(), UTC)


async def _counted(pieces: AsyncIterator[bytes], progress: Progress) -> AsyncIterator[bytes]:
    async for piece in pieces:
        progress.advanced(0, len(piece))
        yield piece


async def _chained(first: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    if first:
        yield first
    async for piece in rest:
        yield piece


def _sid(value: Any, prefix: str) -> str:
    if not isinstance(value, str) or not sids.is_sid(value, prefix):
        raise SourceError(f"the source gave {value!r} where a {prefix} SID belongs")
    return value


def _reason(exc: BaseException) -> str:
    return exc.message if isinstance(exc, GatewayError) else f"{type(exc).__name__}: {exc}"
