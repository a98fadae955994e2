"""Metadata in PostgreSQL (asyncpg): shared by every instance behind the load balancer."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any, Final

import asyncpg

from gateway.config import Settings
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
    numbered,
    recording_from_row,
    recording_row,
    to_micros,
)

# Any constants work; all instances must agree on them.
_MIGRATION_LOCK: Final = 0x6761746577617931
_SWEEP_LOCK: Final = 0x6761746577617932


class PostgresStore:
    schema_version: int = len(MIGRATIONS)

    def __init__(self, pool: asyncpg.Pool, timeout: float) -> None:
        self._pool = pool
        self._timeout = timeout
        self._outages = OutageWatch(_is_outage)

    @classmethod
    async def open(cls, settings: Settings) -> PostgresStore:
        timeout = settings.database_timeout
        pool = await asyncpg.create_pool(
            settings.database_url,
            # No floor: asyncpg would keep reconnecting to restore it through an outage,
            # logging a traceback each time; connections are made as requests need them.
            min_size=0,
            max_size=settings.database_pool_size,
            timeout=timeout,  # to connect
            command_timeout=timeout,
        )
        try:
            await migrate(pool)
        except BaseException:
            await pool.close()
            raise
        return cls(pool, timeout)

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[asyncpg.Connection]:
        # Bounded: with the database gone, a request waits this long for a connection
        # (or a reconnection) and is answered 503, rather than queueing for ever.
        with self._outages.watching():
            async with self._pool.acquire(timeout=self._timeout) as connection:
                yield connection

    async def _run(self, method: str, sql: str, *args: object) -> Any:
        async with self._connection() as connection:
            return await getattr(connection, method)(sql, *args)

    async def aclose(self) -> None:
        try:
            await self._pool.close()  # each goodbye bounded by command_timeout
        except Exception:
            # The database went away: nobody is left to say goodbye to.
            self._pool.terminate()

    async def check(self) -> None:
        await self._run("fetchval", "SELECT 1")

    async def add_account(self, account: Account) -> None:
        await self._run(
            "execute",
            "INSERT INTO accounts VALUES ($1, $2, $3, $4)",
            account.sid,
            account.friendly_name,
            account.auth_token,
            to_micros(account.date_created),
        )

    async def get_account(self, sid: str) -> Account | None:
        row = await self._run("fetchrow", "SELECT * FROM accounts WHERE sid = $1", sid)
        return None if row is None else Account(row[0], row[1], row[2], from_micros(row[3]))

    async def add_api_key(self, key: ApiKey) -> None:
        await self._run(
            "execute",
            "INSERT INTO api_keys VALUES ($1, $2, $3, $4)",
            key.sid,
            key.account_sid,
            key.secret_hash,
            to_micros(key.date_created),
        )

    async def get_api_key(self, sid: str) -> ApiKey | None:
        row = await self._run("fetchrow", "SELECT * FROM api_keys WHERE sid = $1", sid)
        return None if row is None else ApiKey(row[0], row[1], row[2], from_micros(row[3]))

    async def add_recording(self, recording: Recording, callback: Callback | None = None) -> None:
        values = recording_row(recording)
        placeholders = ", ".join(f"${n}" for n in range(1, len(values) + 1))
        async with self._connection() as connection, connection.transaction():
            await connection.execute(
                f"INSERT INTO recordings ({RECORDING_COLUMNS}) VALUES ({placeholders})", *values
            )
            await _add_callback(connection, callback)

    async def get_recording(self, sid: str) -> Recording | None:
        row = await self._run(
            "fetchrow", f"SELECT {RECORDING_COLUMNS} FROM recordings WHERE sid = $1", sid
        )
        return None if row is None else recording_from_row(row)

    async def list_recordings(
        self, account_sid: str, where: RecordingFilter, after: Cursor | None, limit: int
    ) -> list[Recording]:
        sql, args = list_query(account_sid, where, after, limit, lambda n: f"${n}")
        return [recording_from_row(row) for row in await self._run("fetch", sql, *args)]

    async def update_recording(
        self, recording: Recording, expected: Recording, callback: Callback | None = None
    ) -> bool:
        values = (*mutable_values(recording), recording.sid, *expected_values(expected))
        assignments = ", ".join(f"{c} = ${n}" for n, c in enumerate(MUTABLE_COLUMNS, start=1))
        n = len(MUTABLE_COLUMNS)
        async with self._connection() as connection, connection.transaction():
            done = await connection.execute(
                f"UPDATE recordings SET {assignments} "
                f"WHERE sid = ${n + 1} AND {EXPECTED_STATE.format(f'${n + 2}', f'${n + 3}')}",
                *values,
            )
            updated = done == "UPDATE 1"
            if updated:
                await _add_callback(connection, callback)
        return bool(updated)

    async def media_keys(self, sids: Sequence[str]) -> dict[str, str]:
        rows = await self._run("fetch", MEDIA_KEYS.format("= ANY($1::text[])"), list(sids))
        return {row[0]: row[1] for row in rows}

    async def deleted_with_media(self, limit: int) -> list[Recording]:
        rows = await self._run("fetch", DELETED_WITH_MEDIA.format("$1"), limit)
        return [recording_from_row(row) for row in rows]

    async def purge_deleted(self, before: datetime) -> int:
        done = await self._run("execute", PURGE_DELETED.format("$1"), to_micros(before))
        return int(done.split()[-1])  # "DELETE <count>"

    @asynccontextmanager
    async def sweep_lock(self) -> AsyncIterator[bool]:
        # A session-level advisory lock, held on one connection for the whole sweep; the
        # sweep's own queries say whether the database answers, not this connection.
        with self._outages.watching():
            connection = await self._pool.acquire(timeout=self._timeout)
        try:
            with self._outages.watching():
                mine = await connection.fetchval("SELECT pg_try_advisory_lock($1)", _SWEEP_LOCK)
            try:
                yield bool(mine)
            finally:
                # A connection lost meanwhile took the lock with it: the server drops a
                # session's advisory locks as the session ends.
                if mine:
                    with contextlib.suppress(asyncpg.InterfaceError, *_OUTAGES):
                        await connection.execute("SELECT pg_advisory_unlock($1)", _SWEEP_LOCK)
        finally:
            await self._pool.release(connection)

    async def mark_deleted(
        self, sid: str, when: datetime, callback: Callback | None = None
    ) -> Recording | None:
        async with self._connection() as connection, connection.transaction():
            row = await connection.fetchrow(
                f"UPDATE recordings SET status = $1, date_updated = $2 "
                f"WHERE sid = $3 AND status <> $1 RETURNING {RECORDING_COLUMNS}",
                Status.DELETED.value,
                to_micros(when),
                sid,
            )
            if row is not None:
                await _add_callback(connection, callback)
        return recording_from_row(row) if row is not None else await self.get_recording(sid)

    async def claim_callbacks(
        self, now: datetime, lease_until: datetime, limit: int
    ) -> list[Callback]:
        # SKIP LOCKED: instances claiming at once each get other events, none waits.
        sql = numbered(CLAIM_CALLBACKS.format(lock="FOR UPDATE SKIP LOCKED"))
        rows = await self._run("fetch", sql, to_micros(lease_until), to_micros(now), limit)
        return [callback_from_row(row) for row in rows]

    async def finish_callback(self, callback: Callback) -> None:
        await self._run("execute", numbered(FINISH_CALLBACK), *finish_values(callback))

    async def list_callbacks(self, recording_sid: str | None, limit: int) -> list[Callback]:
        sid = recording_sid or ""
        rows = await self._run("fetch", numbered(LIST_CALLBACKS), sid, sid, limit)
        return [callback_from_row(row) for row in rows]


_OUTAGES: Final = (
    OSError,  # refused, reset, unreachable
    TimeoutError,  # no connection, or no answer, in time
    asyncpg.PostgresConnectionError,  # class 08: the connection broke
    asyncpg.OperatorInterventionError,  # class 57: shutting down, starting up
    asyncpg.InsufficientResourcesError,  # class 53: too many connections, disk full
)


def _is_outage(error: BaseException) -> bool:
    return isinstance(error, _OUTAGES)


async def _add_callback(connection: asyncpg.Connection, callback: Callback | None) -> None:
    if callback is not None:
        await connection.execute(numbered(INSERT_CALLBACK), *callback_row(callback))


async def migrate(pool: asyncpg.Pool) -> None:
    """Bring the schema up to date. Safe to run from every instance at once: the
    advisory lock lets one migrate while the others wait, then find nothing to do."""
    async with pool.acquire() as connection, connection.transaction():
        await connection.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
        await connection.execute(
            "CREATE TABLE IF NOT EXISTS gateway_schema (version integer PRIMARY KEY, "
            "applied_at timestamptz NOT NULL DEFAULT now())"
        )
        version = await connection.fetchval("SELECT coalesce(max(version), 0) FROM gateway_schema")
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            await connection.execute(script)
            await connection.execute("INSERT INTO gateway_schema (version) VALUES ($1)", number)
