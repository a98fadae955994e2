"""Metadata in SQLite: the embedded default."""

from __future__ import annotations

import asyncio
import itertools
import sqlite3
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Final

import aiosqlite

from gateway.models import Account, ApiKey, Callback, Cursor, Recording, RecordingFilter, Status
from gateway.store.outages import OutageWatch
from gateway.store.sql import (
    CLAIM_CALLBACKS,
    DELETED_WITH_MEDIA,
    EXPECTED_STATE,
    FINISH_CALLBACK,
    INSERT_CALLBACK,
    LIST_CALLBACKS,
    MEDIA_KEYS,
    MIGRATIONS,
    MUTABLE_COLUMNS,
    PURGE_DELETED,
    RECORDING_COLUMNS,
    callback_from_row,
    callback_row,
    expected_values,
    finish_values,
    from_micros,
    list_query,
    mutable_values,
    recording_from_row,
    recording_row,
    to_micros,
)

WAL_ATTEMPTS: Final = 20


class SqliteStore:
    schema_version: int = len(MIGRATIONS)

    def __init__(self, db: aiosqlite.Connection) -> None:
        self._db = db
        self._sweeping = asyncio.Lock()
        self._writing = asyncio.Lock()
        # Another process's write lock holds up writes, not reads (WAL): watched apart, so
        # reads that still succeed do not end, and restart, the writes' outage.
        self._outages = OutageWatch(_is_outage)
        self._write_outages = OutageWatch(_is_outage, "database writes")

    @classmethod
    async def open(cls, path: Path, busy_timeout: float = 5.0) -> SqliteStore:
        if str(path) != ":memory:":
            await asyncio.to_thread(path.parent.mkdir, parents=True, exist_ok=True)
        # Autocommit: each statement is its own transaction unless we BEGIN one.
        db = await aiosqlite.connect(path, isolation_level=None)
        try:
            # Another process holding the write lock longer than this is an outage.
            await db.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
            await _use_wal(db)
            await db.execute("PRAGMA foreign_keys = ON")
            await _migrate(db)
        except BaseException:
            await db.close()
            raise
        return cls(db)

    async def aclose(self) -> None:
        await self._db.close()

    async def check(self) -> None:
        await self._one("SELECT 1", ())

    async def add_account(self, account: Account) -> None:
        await self._write(
            "INSERT INTO accounts VALUES (?, ?, ?, ?)",
            (
                account.sid,
                account.friendly_name,
                account.auth_token,
                to_micros(account.date_created),
            ),
        )

    async def get_account(self, sid: str) -> Account | None:
        row = await self._one("SELECT * FROM accounts WHERE sid = ?", (sid,))
        return None if row is None else Account(row[0], row[1], row[2], from_micros(row[3]))

    async def add_api_key(self, key: ApiKey) -> None:
        await self._write(
            "INSERT INTO api_keys VALUES (?, ?, ?, ?)",
            (key.sid, key.account_sid, key.secret_hash, to_micros(key.date_created)),
        )

    async def get_api_key(self, sid: str) -> ApiKey | None:
        row = await self._one("SELECT * FROM api_keys WHERE sid = ?", (sid,))
        return None if row is None else ApiKey(row[0], row[1], row[2], from_micros(row[3]))

    async def add_recording(self, recording: Recording, callback: Callback | None = None) -> None:
        placeholders = ", ".join("?" * len(RECORDING_COLUMNS.split(",")))
        async with self._transaction():
            await self._db.execute(
                f"INSERT INTO recordings ({RECORDING_COLUMNS}) VALUES ({placeholders})",
                recording_row(recording),
            )
            await self._add_callback(callback)

    async def get_recording(self, sid: str) -> Recording | None:
        row = await self._one(f"SELECT {RECORDING_COLUMNS} FROM recordings WHERE sid = ?", (sid,))
        return None if row is None else recording_from_row(row)

    async def list_recordings(
        self, account_sid: str, where: RecordingFilter, after: Cursor | None, limit: int
    ) -> list[Recording]:
        sql, args = list_query(account_sid, where, after, limit, lambda n: f"?{n}")
        return [recording_from_row(row) for row in await self._rows(sql, args)]

    async def update_recording(
        self, recording: Recording, expected: Recording, callback: Callback | None = None
    ) -> bool:
        assignments = ", ".join(f"{column} = ?" for column in MUTABLE_COLUMNS)
        async with self._transaction():
            async with self._db.execute(
                f"UPDATE recordings SET {assignments} "
                f"WHERE sid = ? AND {EXPECTED_STATE.format('?', '?')}",
                (*mutable_values(recording), recording.sid, *expected_values(expected)),
            ) as cursor:
                updated = cursor.rowcount == 1
            if updated:
                await self._add_callback(callback)
        return updated

    async def media_keys(self, sids: Sequence[str]) -> dict[str, str]:
        marks = ", ".join("?" * len(sids))
        rows = await self._rows(MEDIA_KEYS.format(f"IN ({marks})"), tuple(sids))
        return {row[0]: row[1] for row in rows}

    async def deleted_with_media(self, limit: int) -> list[Recording]:
        rows = await self._rows(DELETED_WITH_MEDIA.format("?"), (limit,))
        return [recording_from_row(row) for row in rows]

    async def purge_deleted(self, before: datetime) -> int:
        with self._write_outages.watching():
            async with (
                self._writing,
                self._db.execute(PURGE_DELETED.format("?"), (to_micros(before),)) as cursor,
            ):
                return cursor.rowcount

    @asynccontextmanager
    async def sweep_lock(self) -> AsyncIterator[bool]:
        # SQLite serves one instance, so a lock in this process is enough.
        if self._sweeping.locked():
            yield False
            return
        async with self._sweeping:
            yield True

    async def mark_deleted(
        self, sid: str, when: datetime, callback: Callback | None = None
    ) -> Recording | None:
        async with self._transaction():
            async with self._db.execute(
                f"UPDATE recordings SET status = ?, date_updated = ? "
                f"WHERE sid = ? AND status <> ? RETURNING {RECORDING_COLUMNS}",
                (Status.DELETED.value, to_micros(when), sid, Status.DELETED.value),
            ) as cursor:
                row = await cursor.fetchone()
            if row is not None:
                await self._add_callback(callback)
        return recording_from_row(row) if row is not None else await self.get_recording(sid)

    async def claim_callbacks(
        self, now: datetime, lease_until: datetime, limit: int
    ) -> list[Callback]:
        sql = CLAIM_CALLBACKS.format(lock="")  # one instance: the write lock is enough
        async with (
            self._transaction(),
            self._db.execute(sql, (to_micros(lease_until), to_micros(now), limit)) as cursor,
        ):
            rows = await cursor.fetchall()
        return [callback_from_row(row) for row in rows]

    async def finish_callback(self, callback: Callback) -> None:
        await self._write(FINISH_CALLBACK, finish_values(callback))

    async def list_callbacks(self, recording_sid: str | None, limit: int) -> list[Callback]:
        sid = recording_sid or ""
        return [
            callback_from_row(row) for row in await self._rows(LIST_CALLBACKS, (sid, sid, limit))
        ]

    async def _add_callback(self, callback: Callback | None) -> None:
        if callback is not None:
            await self._db.execute(INSERT_CALLBACK, callback_row(callback))

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[None]:
        # One connection serves every coroutine: the lock keeps other writes out of
        # this transaction, and IMMEDIATE keeps other processes out of the file.
        with self._write_outages.watching():
            async with self._writing:
                await self._db.execute("BEGIN IMMEDIATE")
                try:
                    yield
                except BaseException:
                    await self._db.execute("ROLLBACK")
                    raise
                await self._db.execute("COMMIT")

    async def _one(self, sql: str, args: tuple[object, ...]) -> aiosqlite.Row | None:
        with self._outages.watching():
            async with self._db.execute(sql, args) as cursor:
                return await cursor.fetchone()

    async def _rows(self, sql: str, args: Sequence[object]) -> Iterable[aiosqlite.Row]:
        with self._outages.watching():
            async with self._db.execute(sql, args) as cursor:
                return await cursor.fetchall()

    async def _write(self, sql: str, args: tuple[object, ...]) -> None:
        with self._write_outages.watching():
            async with self._writing:
                await self._db.execute(sql, args)


def _is_outage(error: BaseException) -> bool:
    # Locked beyond busy_timeout, or a disk that fails or is full: the environment's
    # failures, unlike the OperationalErrors a wrong statement raises.
    message = str(error)
    return isinstance(error, sqlite3.OperationalError) and any(
        sign in message for sign in ("locked", "busy", "disk", "unable to open")
    )


async def _use_wal(db: aiosqlite.Connection) -> None:
    # Processes opening a new database at once can each hold a read lock while asking
    # for the write lock the switch needs; SQLite then answers one "locked" at once
    # instead of waiting on busy_timeout, so that one tries again.
    for attempt in itertools.count(1):
        try:
            await db.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or attempt == WAL_ATTEMPTS:
                raise
            await asyncio.sleep(0.01 * attempt)


async def _migrate(db: aiosqlite.Connection) -> None:
    # IMMEDIATE takes the write lock before reading the version, so processes starting
    # at once on a new database migrate one after the other.
    await db.execute("BEGIN IMMEDIATE")
    try:
        async with db.execute("PRAGMA user_version") as cursor:
            row = await cursor.fetchone()
        version = row[0] if row else 0
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            for statement in script.split(";"):
                if statement.strip():
                    await db.execute(statement)
            await db.execute(f"PRAGMA user_version = {number}")
        await db.execute("COMMIT")
    except BaseException:
        await db.execute("ROLLBACK")
        raise
