"""The recordings use-cases: list, fetch, delete and media links."""

from __future__ import annotations

import builtins
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from gateway import sids
from gateway.callbacks.events import announce
from gateway.errors import NotFound
from gateway.janitor import forget_media
from gateway.media.headers import CONTENT_TYPES, content_disposition
from gateway.models import Cursor, Recording, RecordingFilter, RecordingPage, Status
from gateway.signing import MediaGrant, MediaLinkSigner
from gateway.storage import MediaStorage
from gateway.store import MetadataStore


@dataclass(frozen=True, slots=True)
class MediaLinkRequest:
    ttl: int
    # As the caller asked, not yet checked; None for the default attachment.
    content_disposition: str | None = None


@dataclass(slots=True)
class Recordings:
    store: MetadataStore
    storage: MediaStorage
    signer: MediaLinkSigner
    now: Callable[[], float] = field(default=time.time)
    # Hand out the storage's own presigned URLs, which this service cannot revoke.
    presign: bool = False
    callback_written: Callable[[], None] = field(default=lambda: None)

    async def list(
        self, account_sid: str, where: RecordingFilter, page_size: int, cursor: Cursor | None
    ) -> RecordingPage:
        # One row more than asked says whether there is a page beyond this one.
        rows = await self.store.list_recordings(account_sid, where, cursor, page_size + 1)
        more = len(rows) > page_size
        rows = rows[:page_size]
        if cursor is not None and not cursor.forward:
            rows.reverse()
            has_next, has_previous = True, more
        else:
            has_next, has_previous = more, cursor is not None
        return RecordingPage(
            recordings=rows,
            next_cursor=_edge(rows[-1], forward=True) if has_next and rows else None,
            previous_cursor=_edge(rows[0], forward=False) if has_previous and rows else None,
        )

    async def get(self, account_sid: str, sid: str, room_sid: str | None = None) -> Recording:
        recording = await self.store.get_recording(sid) if sids.is_sid(sid, "RT") else None
        # Another account's recording is "not found", never "forbidden": SIDs leak nothing.
        if (
            recording is None
            or recording.account_sid != account_sid
            or (room_sid is not None and recording.room_sid != room_sid)
        ):
            raise NotFound(f"The requested resource /Recordings/{sid} was not found")
        return recording

    async def matching(self, account_sid: str, where: RecordingFilter) -> tuple[str, ...]:
        """The SID of every recording the filter matches, newest first, through all pages;
        SIDs only, so a million of them take tens of MB rather than a GB."""
        found: builtins.list[str] = []  # `list` here is the method above
        cursor = None
        while True:
            page = await self.list(account_sid, where, 1000, cursor)
            found.extend(recording.sid for recording in page.recordings)
            if page.next_cursor is None:
                return tuple(found)
            cursor = page.next_cursor

    async def delete(self, account_sid: str, sid: str, room_sid: str | None = None) -> None:
        recording = await self.get(account_sid, sid, room_sid)
        # Marked first: outstanding links check the status, so they die with this write.
        now = self._utcnow()
        announcement = announce(recording.replace(status=Status.DELETED, date_updated=now), now)
        deleted = await self.store.mark_deleted(recording.sid, now, announcement)
        if announcement is not None:
            self.callback_written()
        if deleted is not None:
            await forget_media(self.store, self.storage, deleted)

    async def issue_media_link(
        self,
        account_sid: str,
        sid: str,
        room_sid: str | None,
        request: MediaLinkRequest,
        base_url: str,
    ) -> str:
        """The URL `redirect_to` names: this service's signed link, or a presigned one."""
        recording = await self.get(account_sid, sid, room_sid)
        disposition = content_disposition(
            request.content_disposition, f"{recording.sid}.{recording.container_format}"
        )
        if not recording.has_media:
            raise NotFound(f"Recording {sid} has no media to download ({recording.status})")
        assert recording.media_key is not None  # has_media
        if self.presign:
            content_type = CONTENT_TYPES[recording.codec]
            url = await self.storage.presign(
                recording.media_key, request.ttl, content_type, disposition
            )
            if url is not None:
                return url
        expires_at = int(self.now()) + request.ttl
        grant = MediaGrant(recording.sid, recording.account_sid, disposition, expires_at)
        return f"{base_url}/media/{self.signer.issue(grant)}"

    async def redeem_media_link(self, token: str) -> tuple[MediaGrant, Recording]:
        """The grant behind a link and the recording it opens: one lookup by key."""
        grant = self.signer.verify(token)
        recording = await self.store.get_recording(grant.recording_sid)
        if recording is None or recording.account_sid != grant.account_sid:
            raise NotFound("The recording behind this link does not exist")
        if not recording.has_media:
            raise NotFound(f"Recording {recording.sid} is {recording.status}; its media is gone")
        return grant, recording

    def _utcnow(self) -> datetime:
        return datetime.fromtimestamp(self.now(), UTC)


def _edge(recording: Recording, *, forward: bool) -> Cursor:
    return Cursor(recording.date_created, recording.sid, forward)
