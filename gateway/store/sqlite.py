"""The SQLite driver: the embedded default, one process's metadata in one file."""

from __future__ import annotations

import asyncio
import fcntl
import itertools
import mmap
import os
import sqlite3
import struct
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, ClassVar, Final, TypeVar

from gateway.store.outages import OutageWatch
from gateway.store.schema import MIGRATIONS
from gateway.store.sql import SqlStore, Statements

T = TypeVar("T")
LOCKED_ATTEMPTS: Final = 20
REMEMBERED_ROWS: Final = 4096


class _OnThread:
    """Statements on one connection, each run in that connection's own thread."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._connection = connection
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="sqlite")

    async def run(self, call: Callable[[sqlite3.Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, call, self._connection)

    async def execute(self, sql: str, *args: object) -> int:
        return await self.run(lambda db: db.execute(sql, args).rowcount)

    async def fetch(self, sql: str, *args: object) -> list[Sequence[Any]]:
        return await self.run(lambda db: db.execute(sql, args).fetchall())

    async def close(self) -> None:
        await self.run(sqlite3.Connection.close)
        self._thread.shutdown(wait=False)  # its last work is done: it ends now


class SqliteDriver:
    """Three connections. Writes queue on one, in a thread of their own; other reads run
    on another, so they never queue behind a write waiting for another process's lock;
    primary-key lookups run on the loop itself. Reads see committed rows only (WAL)."""

    claim_lock = ""  # one instance: the write lock is enough

    def __init__(self, path: Path, busy_timeout: float) -> None:
        # Blocking (opening, migrating): open_sqlite runs it in a thread.
        writer = _connect(path, busy_timeout)
        try:
            _when_unlocked(writer, "PRAGMA journal_mode = WAL")
            _migrate(writer)
            # Lookups never wait on the loop: a busy database sends them to a thread.
            lookups, reader = _connect(path, 0), _connect(path, busy_timeout)
        except BaseException:
            writer.close()
            raise
        self._lookups = _Lookups(lookups, path)
        self._reads, self._writes = _OnThread(reader), _OnThread(writer)
        self._timeout = busy_timeout
        self._writing = asyncio.Lock()  # one transaction at a time on the writer
        self._sweep_file = os.open(f"{path}.sweep-lock", os.O_RDWR | os.O_CREAT, 0o600)
        self._sweeping = False
        # Another process's write lock holds up writes, not reads: watched apart, so
        # reads that still succeed do not end, and restart, the writes' outage.
        self._read_outages = OutageWatch(_is_outage)
        self._write_outages = OutageWatch(_is_outage, "database writes")

    async def aclose(self) -> None:
        await self._reads.close()
        await self._writes.close()
        self._lookups.close()
        os.close(self._sweep_file)

    async def fetch(self, sql: str, *args: object) -> list[Sequence[Any]]:
        with self._read_outages.watching():
            return await self._reads.fetch(sql, *args)

    async def fetch_one(self, sql: str, *args: object) -> Sequence[Any] | None:
        with self._read_outages.watching():
            try:
                return self._lookups.look_up(sql, args)
            except _Unsettled:
                pass
            except sqlite3.OperationalError as error:
                if not _is_outage(error):
                    raise
            rows = await self._reads.fetch(sql, *args)  # waiting out the lock, in a thread
        return rows[0] if rows else None

    async def execute(self, sql: str, *args: object) -> int:
        async with self.transaction() as db:
            return await db.execute(sql, *args)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Statements]:
        with self._write_outages.watching():
            # Writes queue here behind one another; bounded, so that during an outage
            # they do not wait a busy_timeout each, one after the other. A wait that
            # times out is the same outage as the lock holding up the write before it.
            async with asyncio.timeout(self._timeout):
                await self._writing.acquire()
            try:
                # IMMEDIATE takes SQLite's write lock now, waiting up to busy_timeout
                # for another process to let go of it.
                await self._writes.execute("BEGIN IMMEDIATE")
                try:
                    yield self._writes
                except BaseException:
                    await self._writes.execute("ROLLBACK")
                    raise
                await self._writes.execute("COMMIT")
            finally:
                self._writing.release()

    @asynccontextmanager
    async def sweep_lock(self) -> AsyncIterator[bool]:
        # Workers sharing the database each have a driver: a lock on a file beside it is
        # one per database, as PostgreSQL's advisory lock is. flock counts per open file,
        # so this driver's own sweeps are told apart by the flag.
        if self._sweeping:
            yield False
            return
        try:
            fcntl.flock(self._sweep_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        self._sweeping = True
        try:
            yield True
        finally:
            self._sweeping = False
            fcntl.flock(self._sweep_file, fcntl.LOCK_UN)


class _Lookups:
    """Rows by primary key, read on the loop: one row from the page cache or a page or two
    of disk costs less than handing it to a thread and back. It never waits for a lock
    (busy_timeout 0), and WAL readers rarely meet one.

    A row is remembered until the database changes, so nothing remembered is older than
    the last commit of any connection (this process's writer, another worker, a command)
    and a deletion refuses the links it revokes the moment it returns. Whether anything
    was committed is read off the WAL index that every connection maps; where there is
    none, `PRAGMA data_version` tells, for the price of a statement, and while it is
    being written the lookup is left to a thread."""

    def __init__(self, connection: sqlite3.Connection, path: Path) -> None:
        self._connection = connection
        self._commits = _WalIndex.of(connection, path)
        self._seen: object = None
        self._rows: dict[tuple[str, tuple[object, ...]], Sequence[Any] | None] = {}

    def look_up(self, sql: str, args: tuple[object, ...]) -> Sequence[Any] | None:
        # Read before the row, so a commit in between leaves the row remembered under
        # the older mark, which the next look finds changed.
        if self._commits is None:
            seen = self._connection.execute("PRAGMA data_version").fetchone()
        elif (seen := self._commits.header()) is None:
            # A commit midway, or a process that died midway through one: SQLite may
            # first have to rebuild the index, retrying for up to ten seconds while
            # another connection holds a lock, which a thread can wait out and the
            # loop must not.
            raise _Unsettled
        if seen != self._seen:
            self._seen = seen
            self._rows.clear()
        key = (sql, args)
        if key in self._rows:
            return self._rows[key]
        row: Sequence[Any] | None = self._connection.execute(sql, args).fetchone()
        if len(self._rows) >= REMEMBERED_ROWS:
            self._rows.clear()
        self._rows[key] = row
        return row

    def close(self) -> None:
        self._connection.close()
        if self._commits is not None:
            self._commits.close()


class _Unsettled(Exception):
    """The WAL index is being written: the lookup is a thread's to make."""


class _WalIndex:
    """The header of a database's WAL index (the `-shm` file, sqlite.org/walformat.html
    §2.1), which every commit rewrites before it returns: comparing it costs no
    statement, lock or system call. SQLite writes the header's second copy, then its
    first; a reader that finds the two different caught a commit midway.

    The file is opened once per process and closed only when no store of the process
    uses it: closing any descriptor of a file drops every fcntl lock the process holds
    on it (POSIX), and SQLite's connections hold theirs on this file that way. Without
    them, another process opening the database would take the index for abandoned and
    rebuild it under the connections still using it."""

    VERSION: Final = 3007000
    HEADER: Final = 48
    _opened: ClassVar[dict[str, _WalIndex]] = {}
    _opening: ClassVar[threading.Lock] = threading.Lock()  # stores open in threads

    def __init__(self, name: str, fd: int, mapped: mmap.mmap) -> None:
        self._name, self._fd, self._mapped = name, fd, mapped
        self._users = 1

    @classmethod
    def of(cls, connection: sqlite3.Connection, path: Path) -> _WalIndex | None:
        """The index `connection` maps, or None where there is none to read."""
        try:
            connection.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()  # maps it
        except sqlite3.OperationalError:
            return None  # not in WAL mode, or busy recovering: ask data_version instead
        name = os.path.realpath(f"{path}-shm")
        with cls._opening:
            if (index := cls._opened.get(name)) is not None:
                index._users += 1
                return index
            try:
                fd = os.open(name, os.O_RDONLY)
            except OSError:
                return None
            try:
                # The file stays whole while a connection maps it: only a first opener,
                # one that finds no other connection, truncates it.
                mapped = mmap.mmap(fd, 2 * cls.HEADER, mmap.MAP_SHARED, mmap.PROT_READ)
            except (OSError, ValueError):
                os.close(fd)
                return None
            cls._opened[name] = index = cls(name, fd, mapped)
            return index

    def header(self) -> bytes | None:
        """The header as of now, or None when it is being written or is not one SQLite
        version 3.7.0 or later writes."""
        both = self._mapped[: 2 * self.HEADER]
        first = both[: self.HEADER]
        if first != both[self.HEADER :] or struct.unpack_from("=I", first)[0] != self.VERSION:
            return None
        return first

    def close(self) -> None:
        """Once the store's connections are closed: the last user closes the file."""
        with self._opening:
            self._users -= 1
            if self._users:
                return
            del self._opened[self._name]
            self._mapped.close()
            os.close(self._fd)


async def open_sqlite(path: Path, busy_timeout: float = 5.0) -> SqlStore:
    return SqlStore(await asyncio.to_thread(SqliteDriver, path, busy_timeout))


def _connect(path: Path, busy_timeout: float) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    # Autocommit: each statement is its own transaction unless we BEGIN one.
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    # Another process holding the write lock longer than this is an outage.
    db.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
    db.execute("PRAGMA foreign_keys = ON")
    return db


def _is_outage(error: BaseException) -> bool:
    # Locked beyond busy_timeout, or a disk that fails or is full: the environment's
    # failures, unlike the OperationalErrors a wrong statement raises.
    if isinstance(error, TimeoutError):  # waiting for the write turn
        return True
    message = str(error)
    # "locking protocol" (SQLITE_PROTOCOL): a WAL index that stayed unsettled through
    # SQLite's retries, as when a process died writing it; sqlite.org/rescode.html
    # says to try again.
    return isinstance(error, sqlite3.OperationalError) and any(
        sign in message for sign in ("locked", "locking protocol", "busy", "disk", "unable to open")
    )


def _when_unlocked(db: sqlite3.Connection, statement: str) -> None:
    # Processes opening a new database at once can each hold a read lock while asking
    # for the write lock that switching to WAL or migrating needs; SQLite then answers
    # one "locked" at once instead of waiting on busy_timeout, so that one tries again.
    for attempt in itertools.count(1):
        try:
            db.execute(statement)
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or attempt == LOCKED_ATTEMPTS:
                raise
            time.sleep(0.01 * attempt)


def _migrate(db: sqlite3.Connection) -> None:
    # IMMEDIATE takes the write lock before reading the version, so processes starting
    # at once on a new database migrate one after the other.
    _when_unlocked(db, "BEGIN IMMEDIATE")
    with db:  # COMMIT, or ROLLBACK on any error
        (version,) = db.execute("PRAGMA user_version").fetchone()
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            for statement in script.split(";"):
                if statement.strip():
                    db.execute(statement)
            db.execute(f"PRAGMA user_version = {number}")
