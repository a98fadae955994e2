"""Where recording metadata lives: the MetadataStore Protocol and `open_store(url)`."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Protocol

from gateway.config import Settings
from gateway.models import Account, ApiKey, Callback, Cursor, Recording, RecordingFilter


class MetadataStore(Protocol):
    schema_version: int

    async def check(self) -> None:
        """Raises unless the database answers a query now."""
        ...

    async def add_account(self, account: Account) -> None: ...

    async def get_account(self, sid: str) -> Account | None: ...

    async def add_api_key(self, key: ApiKey) -> None: ...

    async def get_api_key(self, sid: str) -> ApiKey | None: ...

    async def add_recording(self, recording: Recording, callback: Callback | None = None) -> None:
        """Store a new recording, and in the same transaction the callback announcing it."""
        ...

    async def get_recording(self, sid: str) -> Recording | None: ...

    async def list_recordings(
        self, account_sid: str, where: RecordingFilter, after: Cursor | None, limit: int
    ) -> list[Recording]:
        """Up to `limit` recordings past `after`, in the cursor's walking order.

        Forward (and with no cursor) that is newest first; backward, oldest first.
        Deleted recordings are left out unless the filter asks for them.
        """
        ...

    async def update_recording(
        self, recording: Recording, expected: Recording, callback: Callback | None = None
    ) -> bool:
        """Write `recording`'s state if the stored one still has `expected`'s status and
        media: whether it did. A compare-and-set, so of two requests racing to move one
        recording only one wins, and the loser can undo what it did. `callback` is
        stored in the same transaction, only if the state was written."""
        ...

    async def mark_deleted(
        self, sid: str, when: datetime, callback: Callback | None = None
    ) -> Recording | None:
        """Set status `deleted`, with `callback` only if it was not deleted before: the
        recording as it now is, or None if there is none."""
        ...

    async def claim_callbacks(
        self, now: datetime, lease_until: datetime, limit: int
    ) -> list[Callback]:
        """Pending callbacks due by `now`, each counted as attempted and hidden from other
        claims until `lease_until`; across instances, each claimed by one."""
        ...

    async def finish_callback(self, callback: Callback) -> None:
        """Record how an attempt ended: its state, next due time and last error."""
        ...

    async def list_callbacks(self, recording_sid: str | None, limit: int) -> list[Callback]: ...

    async def pending_callbacks(self) -> int:
        """How many callbacks wait to be delivered: the outbox's backlog."""
        ...

    async def media_keys(self, sids: Sequence[str]) -> dict[str, str]:
        """The media key of each of `sids` that has media stored, deleted or not."""
        ...

    async def deleted_with_media(self, limit: int) -> list[Recording]:
        """Deleted recordings whose media is still stored (its deletion failed), oldest first."""
        ...

    async def purge_deleted(self, before: datetime) -> int:
        """Forget deleted recordings, media gone, last changed before `before`: how many."""
        ...

    def sweep_lock(self) -> AbstractAsyncContextManager[bool]:
        """Whether this process may sweep now: one sweeper at a time across instances."""
        ...

    async def aclose(self) -> None: ...


async def open_store(settings: Settings) -> MetadataStore:
    """The backend `settings.database_url` names, its schema brought up to date."""
    if not settings.uses_sqlite:
        from gateway.store.postgres import open_postgres

        return await open_postgres(settings)
    from gateway.store.sqlite import open_sqlite

    return await open_sqlite(settings.sqlite_path, settings.database_timeout)
