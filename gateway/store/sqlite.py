"""The SQLite driver: the embedded default, one process's metadata in one file."""

from __future__ import annotations

import asyncio
import itertools
import sqlite3
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Final

import aiosqlite

from gateway.store.outages import OutageWatch
from gateway.store.schema import MIGRATIONS
from gateway.store.sql import SqlStore, Statements

LOCKED_ATTEMPTS: Final = 20


class _On:
    """Statements on one connection, inside a transaction someone else holds."""

    def __init__(self, db: aiosqlite.Connection) -> None:
        self._db = db

    async def execute(self, sql: str, *args: object) -> int:
        async with self._db.execute(sql, args) as cursor:
            return cursor.rowcount

    async def fetch(self, sql: str, *args: object) -> list[Sequence[Any]]:
        async with self._db.execute(sql, args) as cursor:
            return list(await cursor.fetchall())


class SqliteDriver:
    """Two connections, each with its own thread: reads never queue behind a write
    waiting for another process's lock, and they see committed rows only (WAL)."""

    claim_lock = ""  # one instance: the write lock is enough

    def __init__(
        self, reader: aiosqlite.Connection, writer: aiosqlite.Connection, timeout: float
    ) -> None:
        self._reads, self._writes = _On(reader), _On(writer)
        self._reader, self._writer = reader, writer
        self._timeout = timeout
        self._writing = asyncio.Lock()  # one transaction at a time on the writer
        self._sweeping = asyncio.Lock()
        # Another process's write lock holds up writes, not reads: watched apart, so
        # reads that still succeed do not end, and restart, the writes' outage.
        self._read_outages = OutageWatch(_is_outage)
        self._write_outages = OutageWatch(_is_outage, "database writes")

    @classmethod
    async def open(cls, path: Path, busy_timeout: float) -> SqliteDriver:
        await asyncio.to_thread(path.parent.mkdir, parents=True, exist_ok=True)
        writer = await _connect(path, busy_timeout)
        try:
            await _when_unlocked(writer, "PRAGMA journal_mode = WAL")
            await _migrate(writer)
            reader = await _connect(path, busy_timeout)
        except BaseException:
            await writer.close()
            raise
        return cls(reader, writer, busy_timeout)

    async def aclose(self) -> None:
        await self._reader.close()
        await self._writer.close()

    async def fetch(self, sql: str, *args: object) -> list[Sequence[Any]]:
        with self._read_outages.watching():
            return await self._reads.fetch(sql, *args)

    async def execute(self, sql: str, *args: object) -> int:
        async with self.transaction() as db:
            return await db.execute(sql, *args)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Statements]:
        with self._write_outages.watching():
            await self._take_write_turn()
            try:
                # IMMEDIATE takes SQLite's write lock now, waiting up to busy_timeout
                # for another process to let go of it.
                await self._writer.execute("BEGIN IMMEDIATE")
                try:
                    yield self._writes
                except BaseException:
                    await self._writer.execute("ROLLBACK")
                    raise
                await self._writer.execute("COMMIT")
            finally:
                self._writing.release()

    async def _take_write_turn(self) -> None:
        # Writes queue here behind one another; bounded, so that during an outage they
        # do not wait a busy_timeout each, one after the other. A wait that times out is
        # the same outage as the lock that holds up the write before it.
        async with asyncio.timeout(self._timeout):
            await self._writing.acquire()

    @asynccontextmanager
    async def sweep_lock(self) -> AsyncIterator[bool]:
        # SQLite serves one instance, so a lock in this process is enough.
        if self._sweeping.locked():
            yield False
            return
        async with self._sweeping:
            yield True


async def open_sqlite(path: Path, busy_timeout: float = 5.0) -> SqlStore:
    return SqlStore(await SqliteDriver.open(path, busy_timeout))


async def _connect(path: Path, busy_timeout: float) -> aiosqlite.Connection:
    # Autocommit: each statement is its own transaction unless we BEGIN one.
    db = await aiosqlite.connect(path, isolation_level=None)
    try:
        # Another process holding the write lock longer than this is an outage.
        await db.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
        await db.execute("PRAGMA foreign_keys = ON")
    except BaseException:
        await db.close()
        raise
    return db


def _is_outage(error: BaseException) -> bool:
    # Locked beyond busy_timeout, or a disk that fails or is full: the environment's
    # failures, unlike the OperationalErrors a wrong statement raises.
    if isinstance(error, TimeoutError):  # waiting for the write turn
        return True
    message = str(error)
    return isinstance(error, sqlite3.OperationalError) and any(
        sign in message for sign in ("locked", "busy", "disk", "unable to open")
    )


async def _when_unlocked(db: aiosqlite.Connection, statement: str) -> None:
    # Processes opening a new database at once can each hold a read lock while asking
    # for the write lock that switching to WAL or migrating needs; SQLite then answers
    # one "locked" at once instead of waiting on busy_timeout, so that one tries again.
    for attempt in itertools.count(1):
        try:
            await db.execute(statement)
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or attempt == LOCKED_ATTEMPTS:
                raise
            await asyncio.sleep(0.01 * attempt)


async def _migrate(db: aiosqlite.Connection) -> None:
    # IMMEDIATE takes the write lock before reading the version, so processes starting
    # at once on a new database migrate one after the other.
    await _when_unlocked(db, "BEGIN IMMEDIATE")
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
