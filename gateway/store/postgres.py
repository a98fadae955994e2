"""The PostgreSQL driver (asyncpg): metadata shared by every instance behind the load
balancer."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any, Final

import asyncpg

from gateway.config import Settings
from gateway.store.outages import OutageWatch
from gateway.store.schema import MIGRATIONS
from gateway.store.sql import SqlStore, Statements

# Any constants work; all instances must agree on them.
_MIGRATION_LOCK: Final = 0x6761746577617931
_SWEEP_LOCK: Final = 0x6761746577617932

_OUTAGES: Final = (
    OSError,  # refused, reset, unreachable
    TimeoutError,  # no connection, or no answer, in time
    asyncpg.PostgresConnectionError,  # class 08: the connection broke
    asyncpg.OperatorInterventionError,  # class 57: shutting down, starting up
    asyncpg.InsufficientResourcesError,  # class 53: too many connections, disk full
)


def _is_outage(error: BaseException) -> bool:
    # Closing a transaction on a connection that broke raises InterfaceError while the
    # break is being handled: the same outage.
    return isinstance(error, _OUTAGES) or isinstance(error.__context__, _OUTAGES)


@functools.lru_cache(maxsize=512)
def numbered(sql: str) -> str:
    """`?` placeholders as PostgreSQL's $1, $2, …; the SQL here has no literal `?`."""
    parts = sql.split("?")
    return "".join(f"{part}${n}" for n, part in enumerate(parts[:-1], start=1)) + parts[-1]


def _count(status: str) -> int:
    # asyncpg answers a command's tag: "UPDATE 1", "DELETE 3", "INSERT 0 1".
    last = status.rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else 0


class _On:
    def __init__(self, connection: asyncpg.Connection) -> None:
        self._connection = connection

    async def execute(self, sql: str, *args: object) -> int:
        return _count(await self._connection.execute(numbered(sql), *args))

    async def fetch(self, sql: str, *args: object) -> list[Sequence[Any]]:
        return list(await self._connection.fetch(numbered(sql), *args))


class PostgresDriver:
    claim_lock = "FOR UPDATE SKIP LOCKED"  # instances claiming at once each get others

    def __init__(self, pool: asyncpg.Pool, timeout: float, size: int) -> None:
        self._pool = pool
        self._timeout = timeout
        self._turns = asyncio.Semaphore(size)  # FIFO: a newcomer queues behind waiters
        self._kept: list[asyncpg.Connection] = []
        self._closing = False
        self._outages = OutageWatch(_is_outage)

    async def aclose(self) -> None:
        self._closing = True
        while self._kept:
            await self._pool.release(self._kept.pop())
        try:
            # close() waits for every connection to come back: bounded, so one that a
            # cancelled task never gave back cannot hold up the process's exit.
            async with asyncio.timeout(self._timeout):
                await self._pool.close()
        except Exception:
            # The database went away, or a connection is still out: terminate() drops
            # them all without a goodbye.
            self._pool.terminate()

    async def execute(self, sql: str, *args: object) -> int:
        async with self._connection() as connection:
            return await _On(connection).execute(sql, *args)

    async def fetch(self, sql: str, *args: object) -> list[Sequence[Any]]:
        async with self._connection() as connection:
            return await _On(connection).fetch(sql, *args)

    async def fetch_one(self, sql: str, *args: object) -> Sequence[Any] | None:
        # What `_connection` does, written out: the lookup every request makes skips an
        # async generator's frames.
        with self._outages.watching():
            await self._take_turn()
            try:
                connection = await self._borrow()
                try:
                    row = await connection.fetchrow(numbered(sql), *args)
                except BaseException:
                    await self._pool.release(connection)
                    raise
                await self._give_back(connection)
                return row  # type: ignore[no-any-return]
            finally:
                self._turns.release()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Statements]:
        async with self._connection() as connection, connection.transaction():
            yield _On(connection)

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[asyncpg.Connection]:
        with self._outages.watching():
            await self._take_turn()
            try:
                connection = await self._borrow()
                try:
                    yield connection
                except BaseException:
                    # Broken, cancelled or failed mid-statement: back to the pool, which
                    # knows how to close it or make it whole.
                    await self._pool.release(connection)
                    raise
                await self._give_back(connection)
            finally:
                self._turns.release()

    async def _give_back(self, connection: asyncpg.Connection) -> None:
        if self._closing:
            await self._pool.release(connection)
        else:
            self._kept.append(connection)

    async def _borrow(self) -> asyncpg.Connection:
        # Connections are kept here between statements rather than given back to the
        # pool: its acquire and release cost three times a primary-key lookup (168 µs of
        # CPU against 39 on this machine). Turns bound how many are out, so at most one
        # per turn is kept; one the server closed meanwhile goes back to the pool.
        while self._kept:
            connection = self._kept.pop()
            if _usable(connection):
                return connection
            await self._pool.release(connection)
        return await self._pool.acquire()

    async def _take_turn(self) -> None:
        # Requests take turns here, first come first served, so the pool itself never
        # has waiters: its queue lets a newcomer take a connection released to someone
        # already waiting, and under load some requests then waited for seconds.
        # Bounded: with the database gone, a request waits at most this long for its
        # turn, and as long again for a reconnection (the pool's connect timeout), and
        # is answered 503 rather than queued for ever. A free turn is taken at once, with
        # no timer to set and cancel.
        if self._turns.locked():
            async with asyncio.timeout(self._timeout):
                await self._turns.acquire()
        else:
            await self._turns.acquire()

    @asynccontextmanager
    async def sweep_lock(self) -> AsyncIterator[bool]:
        # A session-level advisory lock, held on one connection for the whole sweep; the
        # sweep's own queries say whether the database answers, not this connection.
        with self._outages.watching():
            connection = await self._pool.acquire(timeout=self._timeout)
        # A connection lost meanwhile took the lock with it (the server drops a
        # session's advisory locks as it ends), and cannot be reset on release either.
        lost = (asyncpg.InterfaceError, *_OUTAGES)
        try:
            with self._outages.watching():
                mine = await connection.fetchval("SELECT pg_try_advisory_lock($1)", _SWEEP_LOCK)
            try:
                yield bool(mine)
            finally:
                if mine:
                    with contextlib.suppress(*lost):
                        await connection.execute("SELECT pg_advisory_unlock($1)", _SWEEP_LOCK)
        finally:
            with contextlib.suppress(*lost):
                await connection.reset()  # whatever became of the lock, none is kept
            with contextlib.suppress(*lost):
                await self._pool.release(connection)


def _usable(connection: asyncpg.Connection) -> bool:
    try:
        return not connection.is_closed()
    except asyncpg.InterfaceError:  # it closed, and asyncpg handed it back to the pool
        return False


async def _keep_as_is(connection: asyncpg.Connection) -> None:
    pass


async def open_postgres(settings: Settings) -> SqlStore:
    timeout = settings.database_timeout
    # Migrated first, on a connection of its own: waiting for another instance's
    # migration, or running a long one, is not bounded by a request's timeout.
    connection = await asyncpg.connect(settings.database_url, timeout=timeout)
    try:
        await migrate(connection)
    finally:
        await connection.close()
    pool = await asyncpg.create_pool(
        settings.database_url,
        # No floor: asyncpg would keep reconnecting to restore it through an outage,
        # logging a traceback each time; connections are made as requests need them.
        min_size=0,
        # One more than requests take turns for: the sweep lock's, held for a sweep.
        max_size=settings.database_pool_size + 1,
        timeout=timeout,  # to connect
        command_timeout=timeout,
        # Nothing here changes a pooled session's state (the sweep lock resets its
        # own connection), so releasing one need not reset it: asyncpg's default
        # reset is a round trip of four statements after every query.
        reset=_keep_as_is,
    )
    return SqlStore(PostgresDriver(pool, timeout, settings.database_pool_size))


async def migrate(connection: asyncpg.Connection) -> None:
    """Bring the schema up to date. Safe to run from every instance at once: the
    advisory lock lets one migrate while the others wait, then find nothing to do."""
    async with connection.transaction():
        await connection.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
        await connection.execute(
            "CREATE TABLE IF NOT EXISTS gateway_schema (version integer PRIMARY KEY, "
            "applied_at timestamptz NOT NULL DEFAULT now())"
        )
        version = await connection.fetchval("SELECT coalesce(max(version), 0) FROM gateway_schema")
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            await connection.execute(script)
            await connection.execute("INSERT INTO gateway_schema (version) VALUES ($1)", number)
