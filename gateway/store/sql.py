"""The MetadataStore, written once over a small driver per database.

The drivers (sqlite.py, postgres.py) are where the databases differ: connections and
transactions, the placeholder style, row counts, locking, migrations and what counts as
an outage. Everything else is here, in SQL both take, with `?` placeholders.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Any, Final, Protocol

from gateway.instants import to_micros
from gateway.models import Account, ApiKey, Callback, Cursor, Recording, RecordingFilter, Status
from gateway.store.schema import ACCOUNTS, API_KEYS, CALLBACKS, MIGRATIONS, RECORDINGS


class Statements(Protocol):
    async def execute(self, sql: str, *args: object) -> int:
        """Run one statement: how many rows it changed."""
        ...

    async def fetch(self, sql: str, *args: object) -> list[Sequence[Any]]: ...


class Driver(Statements, Protocol):
    async def fetch_one(self, sql: str, *args: object) -> Sequence[Any] | None:
        """One row by primary key, or None: short enough that a driver may read it on
        the loop."""
        ...

    # What makes a row-claiming subquery skip rows another transaction holds.
    claim_lock: str

    def transaction(self) -> AbstractAsyncContextManager[Statements]: ...

    def sweep_lock(self) -> AbstractAsyncContextManager[bool]: ...

    async def aclose(self) -> None: ...


PURGE_BATCH: Final = 1000

# A state change compares status and media, so of two requests racing to move one
# recording only one wins; '' stands for no media.
_EXPECTED: Final = "status = ? AND coalesce(media_key, '') = ?"
# Claiming pushes `due` out by a lease and counts the attempt, in one statement: an
# instance that dies mid-delivery leaves the event to be claimed again when it expires.
_CLAIM: Final = (
    "UPDATE callbacks SET due = ?, attempts = attempts + 1 WHERE id IN ("
    "SELECT id FROM callbacks WHERE state = 'pending' AND due <= ? ORDER BY due LIMIT ? {lock}"
    f") RETURNING {CALLBACKS.column_list}"
)


class SqlStore:
    schema_version: int = len(MIGRATIONS)

    def __init__(self, driver: Driver) -> None:
        self._db = driver

    async def aclose(self) -> None:
        await self._db.aclose()

    async def check(self) -> None:
        await self._db.fetch("SELECT 1")

    async def add_account(self, account: Account) -> None:
        await self._db.execute(ACCOUNTS.insert, *ACCOUNTS.row(account))

    async def get_account(self, sid: str) -> Account | None:
        row = await self._db.fetch_one(ACCOUNTS.select_by_key, sid)
        return None if row is None else ACCOUNTS.record(row)

    async def add_api_key(self, key: ApiKey) -> None:
        await self._db.execute(API_KEYS.insert, *API_KEYS.row(key))

    async def get_api_key(self, sid: str) -> ApiKey | None:
        row = await self._db.fetch_one(API_KEYS.select_by_key, sid)
        return None if row is None else API_KEYS.record(row)

    async def add_recording(self, recording: Recording, callback: Callback | None = None) -> None:
        async with self._db.transaction() as db:
            await db.execute(RECORDINGS.insert, *RECORDINGS.row(recording))
            await _announce(db, callback)

    async def get_recording(self, sid: str) -> Recording | None:
        row = await self._db.fetch_one(RECORDINGS.select_by_key, sid)
        return None if row is None else RECORDINGS.record(row)

    async def list_recordings(
        self, account_sid: str, where: RecordingFilter, after: Cursor | None, limit: int
    ) -> list[Recording]:
        sql, args = _list_query(account_sid, where, after, limit)
        return [RECORDINGS.record(row) for row in await self._db.fetch(sql, *args)]

    async def update_recording(
        self, recording: Recording, expected: Recording, callback: Callback | None = None
    ) -> bool:
        async with self._db.transaction() as db:
            updated = await db.execute(
                f"UPDATE recordings SET {RECORDINGS.assign_mutable} WHERE sid = ? AND {_EXPECTED}",
                *RECORDINGS.mutable_row(recording),
                recording.sid,
                expected.status.value,
                expected.media_key or "",
            )
            if updated:
                await _announce(db, callback)
        return updated == 1

    async def mark_deleted(
        self, sid: str, when: datetime, callback: Callback | None = None
    ) -> Recording | None:
        async with self._db.transaction() as db:
            rows = await db.fetch(
                "UPDATE recordings SET status = 'deleted', date_updated = ? "
                f"WHERE sid = ? AND status <> 'deleted' RETURNING {RECORDINGS.column_list}",
                to_micros(when),
                sid,
            )
            if rows:
                await _announce(db, callback)
        return RECORDINGS.record(rows[0]) if rows else await self.get_recording(sid)

    async def claim_callbacks(
        self, now: datetime, lease_until: datetime, limit: int
    ) -> list[Callback]:
        sql = _CLAIM.format(lock=self._db.claim_lock)
        async with self._db.transaction() as db:
            rows = await db.fetch(sql, to_micros(lease_until), to_micros(now), limit)
        return [CALLBACKS.record(row) for row in rows]

    async def finish_callback(self, callback: Callback) -> None:
        await self._db.execute(
            f"UPDATE callbacks SET {CALLBACKS.assign_mutable} WHERE id = ?",
            *CALLBACKS.mutable_row(callback),
            callback.id,
        )

    async def list_callbacks(self, recording_sid: str | None, limit: int) -> list[Callback]:
        sql = f"{CALLBACKS.select} WHERE (? = '' OR recording_sid = ?) ORDER BY created, id LIMIT ?"
        sid = recording_sid or ""
        return [CALLBACKS.record(row) for row in await self._db.fetch(sql, sid, sid, limit)]

    async def pending_callbacks(self) -> int:
        row = await self._db.fetch_one("SELECT count(*) FROM callbacks WHERE state = 'pending'")
        return int(row[0]) if row else 0

    async def media_keys(self, sids: Sequence[str]) -> dict[str, str]:
        if not sids:
            return {}
        rows = await self._db.fetch(
            "SELECT sid, media_key FROM recordings WHERE media_key IS NOT NULL "
            f"AND sid IN ({', '.join('?' * len(sids))})",
            *sids,
        )
        return {row[0]: row[1] for row in rows}

    async def deleted_with_media(self, limit: int) -> list[Recording]:
        sql = (
            f"{RECORDINGS.select} WHERE status = 'deleted' AND media_key IS NOT NULL "
            "ORDER BY date_updated LIMIT ?"
        )
        return [RECORDINGS.record(row) for row in await self._db.fetch(sql, limit)]

    async def purge_deleted(self, before: datetime) -> int:
        # In batches: each statement short, however many a retention period lets go.
        purged = 0
        while True:
            done = await self._db.execute(
                "DELETE FROM recordings WHERE sid IN (SELECT sid FROM recordings WHERE "
                "status = 'deleted' AND media_key IS NULL AND date_updated < ? LIMIT ?)",
                to_micros(before),
                PURGE_BATCH,
            )
            purged += done
            if done < PURGE_BATCH:
                return purged

    def sweep_lock(self) -> AbstractAsyncContextManager[bool]:
        return self._db.sweep_lock()


async def _announce(db: Statements, callback: Callback | None) -> None:
    if callback is not None:
        await db.execute(CALLBACKS.insert, *CALLBACKS.row(callback))


def _list_query(
    account_sid: str, where: RecordingFilter, after: Cursor | None, limit: int
) -> tuple[str, list[Any]]:
    """The keyset query behind every recordings list.

    The order (date_created, sid) is unique, so a cursor names one exact position and
    a deep page costs what the first does on the (account_sid, date_created, sid) index.
    """
    clauses, args = ["account_sid = ?"], [account_sid]

    def where_(clause: str, *values: Any) -> None:
        clauses.append(clause)
        args.extend(values)

    if where.status is None:
        where_("status <> ?", Status.DELETED.value)
    else:
        where_("status = ?", where.status.value)
    if where.source_sid is not None:
        where_("source_sid = ?", where.source_sid)
    if where.room_sid is not None:
        where_("room_sid = ?", where.room_sid)
    for sid in where.grouping_sids:
        where_("(room_sid = ? OR participant_sid = ?)", sid, sid)
    if where.created_after is not None:
        where_("date_created >= ?", to_micros(where.created_after))
    if where.created_before is not None:
        where_("date_created < ?", to_micros(where.created_before))
    if where.media_type is not None:
        where_("type = ?", where.media_type.value)
    forward = after is None or after.forward
    if after is not None:
        comparison = "<" if forward else ">"
        where_(f"(date_created, sid) {comparison} (?, ?)", to_micros(after.date_created), after.sid)
    order = "DESC" if forward else "ASC"
    sql = (
        f"{RECORDINGS.select} WHERE {' AND '.join(clauses)} "
        f"ORDER BY date_created {order}, sid {order} LIMIT ?"
    )
    return sql, [*args, limit]
