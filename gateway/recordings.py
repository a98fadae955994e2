"""The recordings use-cases: list, fetch and delete."""

from __future__ import annotations

import builtins
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from gateway import sids
from gateway.callbacks.events import announce
from gateway.errors import NotFound
from gateway.instants import utc
from gateway.janitor import forget_media
from gateway.models import Cursor, Recording, RecordingFilter, RecordingPage, Status
from gateway.storage import MediaStorage
from gateway.store import MetadataStore


@dataclass(slots=True)
class Recordings:
    store: MetadataStore
    storage: MediaStorage
    now: Callable[[], float] = field(default=time.time)
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

    def _utcnow(self) -> datetime:
        return utc(self.now())


def _edge(recording: Recording, *, forward: bool) -> Cursor:
    return Cursor(recording.date_created, recording.sid, forward)
