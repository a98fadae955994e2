"""Metadata in SQLite: the embedded default."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path

import aiosqlite

from gateway.models import Account, ApiKey, Cursor, Recording, RecordingFilter, Status
from gateway.store.sql import (
    DELETED_WITH_MEDIA,
    EXPECTED_STATE,
    MIGRATIONS,
    MUTABLE_COLUMNS,
    PURGE_DELETED,
    RECORDING_COLUMNS,
    expected_values,
    from_micros,
    list_query,
    mutable_values,
    recording_from_row,
    recording_row,
    to_micros,
)


class SqliteStore:
    schema_version: int = len(MIGRATIONS)

    def __init__(self, db: aiosqlite.Connection) -> None:
        self._db = db
        self._sweeping = asyncio.Lock()

    @classmethod
    async def open(cls, path: Path) -> SqliteStore:
        if str(path) != ":memory:":
            await asyncio.to_thread(path.parent.mkdir, parents=True, exist_ok=True)
        # Autocommit: each statement is its own transaction unless we BEGIN one.
        db = await aiosqlite.connect(path, isolation_level=None)
        try:
            await db.execute("PRAGMA journal_mode = WAL")
            await db.execute("PRAGMA foreign_keys = ON")
            await db.execute("PRAGMA busy_timeout = 5000")
            await _migrate(db)
        except BaseException:
            await db.close()
            raise
        return cls(db)

    async def aclose(self) -> None:
        await self._db.close()

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

    async def add_recording(self, recording: Recording) -> None:
        placeholders = ", ".join("?" * len(RECORDING_COLUMNS.split(",")))
        await self._write(
            f"INSERT INTO recordings ({RECORDING_COLUMNS}) VALUES ({placeholders})",
            recording_row(recording),
        )

    async def get_recording(self, sid: str) -> Recording | None:
        row = await self._one(f"SELECT {RECORDING_COLUMNS} FROM recordings WHERE sid = ?", (sid,))
        return None if row is None else recording_from_row(row)

    async def list_recordings(
        self, account_sid: str, where: RecordingFilter, after: Cursor | None, limit: int
    ) -> list[Recording]:
        sql, args = list_query(account_sid, where, after, limit, lambda n: f"?{n}")
        async with self._db.execute(sql, args) as cursor:
            return [recording_from_row(row) for row in await cursor.fetchall()]

    async def update_recording(self, recording: Recording, expected: Recording) -> bool:
        assignments = ", ".join(f"{column} = ?" for column in MUTABLE_COLUMNS)
        async with self._db.execute(
            f"UPDATE recordings SET {assignments} "
            f"WHERE sid = ? AND {EXPECTED_STATE.format('?', '?')}",
            (*mutable_values(recording), recording.sid, *expected_values(expected)),
        ) as cursor:
            return cursor.rowcount == 1

    async def deleted_with_media(self, limit: int) -> list[Recording]:
        async with self._db.execute(DELETED_WITH_MEDIA.format("?"), (limit,)) as cursor:
            return [recording_from_row(row) for row in await cursor.fetchall()]

    async def purge_deleted(self, before: datetime) -> int:
        async with self._db.execute(PURGE_DELETED.format("?"), (to_micros(before),)) as cursor:
            return cursor.rowcount

    @asynccontextmanager
    async def sweep_lock(self) -> AsyncIterator[bool]:
        # SQLite serves one instance, so a lock in this process is enough.
        if self._sweeping.locked():
            yield False
            return
        async with self._sweeping:
            yield True

    async def mark_deleted(self, sid: str, when: datetime) -> Recording | None:
        # One statement, so two concurrent deletes agree on what was there before.
        async with self._db.execute(
            f"UPDATE recordings SET status = ?, date_updated = ? WHERE sid = ? "
            f"RETURNING {RECORDING_COLUMNS}",
            (Status.DELETED.value, to_micros(when), sid),
        ) as cursor:
            row = await cursor.fetchone()
        return None if row is None else recording_from_row(row)

    async def _one(self, sql: str, args: tuple[object, ...]) -> aiosqlite.Row | None:
        async with self._db.execute(sql, args) as cursor:
            return await cursor.fetchone()

    async def _write(self, sql: str, args: tuple[object, ...]) -> None:
        await self._db.execute(sql, args)


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
