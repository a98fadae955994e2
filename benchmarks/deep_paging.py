"""A page deep in a 1,000,000-recording account against the first page, per store.

    python benchmarks/deep_paging.py [--rows 1000000] [--postgres DSN]

Keyset paging should make both cost the same: the list query is an index range
scan that starts at the cursor, however far in it is.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway.config import Settings
from gateway.models import Account, Cursor, RecordingFilter
from gateway.store import MetadataStore, open_store

ACCOUNT = "AC" + "a" * 32
ROOMS = 1000
# Every recording's columns, from its number n: a new one each second from 2020 on.
ROW = (
    "'RT' || {hex32}, '{account}', 'completed', 1577836800000000 + n * 1000000, "
    "1577836800000000 + n * 1000000, 'MT' || {hex32}, 'audio', 'mka', 'OPUS', 10, 1000, "
    "'mic', 0, 'RM' || {room32}, 'PA' || {hex32}, NULL, NULL, 'key', '\"etag\"'"
)


def sqlite_fill(path: Path, rows: int) -> None:
    columns = ROW.format(
        hex32="printf('%032x', n)", room32=f"printf('%032x', n % {ROOMS})", account=ACCOUNT
    )
    with sqlite3.connect(path) as db:
        db.execute(
            f"WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < {rows}) "
            f"INSERT INTO recordings SELECT {columns} FROM s"
        )
        db.execute("ANALYZE")


async def postgres_fill(url: str, rows: int) -> None:
    columns = ROW.format(
        hex32="lpad(to_hex(n), 32, '0')", room32=f"lpad(to_hex(n % {ROOMS}), 32, '0')",
        account=ACCOUNT,
    )  # fmt: skip
    connection = await asyncpg.connect(url)
    try:
        await connection.execute(
            f"INSERT INTO recordings SELECT {columns} FROM generate_series(1::bigint, {rows}) AS n"
        )
        await connection.execute("ANALYZE recordings")
    finally:
        await connection.close()


async def median_ms(store: MetadataStore, where: RecordingFilter, after: Cursor | None) -> float:
    times = []
    for _ in range(30):
        started = time.perf_counter()
        page = await store.list_recordings(ACCOUNT, where, after, 51)
        times.append((time.perf_counter() - started) * 1000)
        assert len(page) == 51
    return statistics.median(times)


async def measure(name: str, settings: Settings, rows: int) -> None:
    store = await open_store(settings)
    try:
        # Newest first, so the oldest rows (small n) are on the last pages.
        cases = (
            ("all", RecordingFilter(), 101),
            ("one room", RecordingFilter(room_sid=f"RM{7:032x}"), 7 + ROOMS * 100),
        )
        for label, where, n in cases:
            deep = Cursor(datetime.fromtimestamp(1577836800 + n, UTC), f"RT{n:032x}")
            first = await median_ms(store, where, None)
            late = await median_ms(store, where, deep)
            print(
                f"  {name:8} {label:9} first page {first:6.2f} ms, "
                f"page near the end {late:6.2f} ms, ratio {late / first:4.2f}"
            )
    finally:
        await store.aclose()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    print(f"{args.rows:,} recordings in one account, pages of 50 (median of 30):")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "gateway.db"
        settings = Settings.from_env({"GATEWAY_DATABASE_URL": f"sqlite:///{path}"})
        await (await open_store(settings)).aclose()
        await asyncio.to_thread(sqlite_fill, path, args.rows)
        await add_account(settings)
        await measure("sqlite", settings, args.rows)
    schema = f"bench_{secrets.token_hex(4)}"
    connection = await asyncpg.connect(args.postgres)
    await connection.execute(f"CREATE SCHEMA {schema}")
    try:
        url = f"{args.postgres}?search_path={schema}"
        settings = Settings.from_env({"GATEWAY_DATABASE_URL": url})
        await add_account(settings)
        await postgres_fill(url, args.rows)
        await measure("postgres", settings, args.rows)
    finally:
        await connection.execute(f"DROP SCHEMA {schema} CASCADE")
        await connection.close()


async def add_account(settings: Settings) -> None:
    store = await open_store(settings)
    try:
        if await store.get_account(ACCOUNT) is None:
            await store.add_account(Account(ACCOUNT, "Bench", "token", datetime.now(UTC)))
    finally:
        await store.aclose()


if __name__ == "__main__":
    asyncio.run(main())
