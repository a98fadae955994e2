"""The MetadataStore contract, written once and run on every backend."""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
import sys
from asyncio.subprocess import PIPE
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest

from gateway.config import Settings
from gateway.models import (
    Account,
    ApiKey,
    Callback,
    Codec,
    Container,
    Cursor,
    Delivery,
    MediaType,
    Recording,
    RecordingFilter,
    Status,
)
from gateway.sids import mint
from gateway.store import MetadataStore, open_store
from gateway.store.schema import MIGRATIONS

T0 = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgres"])
def store_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    if request.param == "postgres":
        return Settings.from_env({"GATEWAY_DATABASE_URL": request.getfixturevalue("postgres_url")})
    return Settings.from_env({"GATEWAY_DATABASE_URL": f"sqlite:///{tmp_path}/gateway.db"})


@pytest.fixture
async def store(store_settings: Settings) -> AsyncIterator[MetadataStore]:
    opened = await open_store(store_settings)
    yield opened
    await opened.aclose()


@pytest.fixture
async def account(store: MetadataStore) -> Account:
    account = Account(mint("AC"), "Store tests", "token", T0)
    await store.add_account(account)
    return account


def recording(account: Account, minutes: int, **changes: object) -> Recording:
    made = Recording(
        sid=mint("RT"),
        account_sid=account.sid,
        status=Status.COMPLETED,
        date_created=T0 + timedelta(minutes=minutes),
        date_updated=T0 + timedelta(minutes=minutes, seconds=5),
        source_sid=mint("MT"),
        type=MediaType.AUDIO,
        container_format=Container.MKA,
        codec=Codec.OPUS,
        duration=7,
        size=1234,
        track_name="mic",
        offset=42,
        room_sid=mint("RM"),
        participant_sid=mint("PA"),
        media_key="AC/RT.mka",
        media_etag='"abc"',
    )
    return made.replace(**changes)


async def add(store: MetadataStore, *recordings: Recording) -> list[Recording]:
    for each in recordings:
        await store.add_recording(each)
    return list(recordings)


async def listed(
    store: MetadataStore,
    account: Account,
    where: RecordingFilter | None = None,
    after: Cursor | None = None,
    limit: int = 100,
) -> list[str]:
    rows = await store.list_recordings(account.sid, where or RecordingFilter(), after, limit)
    return [row.sid for row in rows]


async def test_recording_round_trips_every_field_to_the_microsecond(
    store: MetadataStore, account: Account
) -> None:
    original = recording(
        account, 0, status_callback="https://example.com/cb", status_callback_method="POST"
    )
    await store.add_recording(original)
    assert await store.get_recording(original.sid) == original


async def test_unknown_sids_are_none(store: MetadataStore) -> None:
    assert await store.get_recording(mint("RT")) is None
    assert await store.get_account(mint("AC")) is None
    assert await store.get_api_key(mint("SK")) is None


async def test_accounts_and_keys_round_trip(store: MetadataStore, account: Account) -> None:
    assert await store.get_account(account.sid) == account
    key = ApiKey(mint("SK"), account.sid, "f" * 64, T0)
    await store.add_api_key(key)
    assert await store.get_api_key(key.sid) == key


async def test_list_is_newest_first_and_scoped_to_the_account(
    store: MetadataStore, account: Account
) -> None:
    other = Account(mint("AC"), "Other", "token", T0)
    await store.add_account(other)
    mine = await add(store, *(recording(account, minutes) for minutes in (5, 1, 3)))
    await add(store, recording(other, 2))
    assert await listed(store, account) == [mine[0].sid, mine[2].sid, mine[1].sid]


async def test_same_instant_is_ordered_by_sid_so_paging_never_skips(
    store: MetadataStore, account: Account
) -> None:
    same = await add(store, *(recording(account, 0) for _ in range(5)))
    expected = sorted((r.sid for r in same), reverse=True)
    first = await store.list_recordings(account.sid, RecordingFilter(), None, 2)
    assert [r.sid for r in first] == expected[:2]
    rest = await listed(store, account, after=Cursor(first[-1].date_created, first[-1].sid))
    assert rest == expected[2:]


async def test_backward_cursor_walks_towards_newer_oldest_first(
    store: MetadataStore, account: Account
) -> None:
    made = await add(store, *(recording(account, minutes) for minutes in range(6)))
    middle = made[2]
    back = Cursor(middle.date_created, middle.sid, forward=False)
    assert await listed(store, account, after=back, limit=2) == [made[3].sid, made[4].sid]


async def test_deleted_are_left_out_unless_asked_for(
    store: MetadataStore, account: Account
) -> None:
    kept, gone = await add(store, recording(account, 0), recording(account, 1))
    deleted = await store.mark_deleted(gone.sid, T0 + timedelta(days=1))
    assert deleted is not None
    assert deleted.status is Status.DELETED
    assert deleted.date_updated == T0 + timedelta(days=1)
    assert await listed(store, account) == [kept.sid]
    assert await listed(store, account, RecordingFilter(status=Status.DELETED)) == [gone.sid]
    assert await store.mark_deleted(mint("RT"), T0) is None


async def test_filters_narrow_the_list(store: MetadataStore, account: Account) -> None:
    room, alice = mint("RM"), mint("PA")
    audio = await add(store, recording(account, 0, room_sid=room, participant_sid=alice))
    video = await add(
        store,
        recording(
            account, 10, room_sid=room, type=MediaType.VIDEO,
            codec=Codec.VP8, container_format=Container.MKV,
        ),
    )  # fmt: skip
    elsewhere = await add(store, recording(account, 20, participant_sid=alice))
    processing = await add(store, recording(account, 30, status=Status.PROCESSING))

    async def only(**where: object) -> list[str]:
        return await listed(store, account, RecordingFilter(**where))  # type: ignore[arg-type]

    assert await only(grouping_sids=(room,)) == [video[0].sid, audio[0].sid]
    assert await only(grouping_sids=(alice,)) == [elsewhere[0].sid, audio[0].sid]
    assert await only(grouping_sids=(room, alice)) == [audio[0].sid]
    assert await only(room_sid=room) == [video[0].sid, audio[0].sid]
    assert await only(media_type=MediaType.VIDEO) == [video[0].sid]
    assert await only(source_sid=elsewhere[0].source_sid) == [elsewhere[0].sid]
    assert await only(status=Status.PROCESSING) == [processing[0].sid]
    # DateCreatedAfter is inclusive, DateCreatedBefore exclusive.
    window = {
        "created_after": T0 + timedelta(minutes=10),
        "created_before": T0 + timedelta(minutes=30),
    }
    assert await only(**window) == [elsewhere[0].sid, video[0].sid]


async def test_data_survives_reopening(store_settings: Settings) -> None:
    first = await open_store(store_settings)
    account = Account(mint("AC"), "Durable", "token", T0)
    await first.add_account(account)
    await first.add_recording(recording(account, 0))
    await first.aclose()
    second = await open_store(store_settings)
    try:
        assert await second.get_account(account.sid) == account
        assert len(await listed(second, account)) == 1
    finally:
        await second.aclose()


async def test_instances_starting_at_once_migrate_once(store_settings: Settings) -> None:
    stores = await asyncio.gather(*(open_store(store_settings) for _ in range(4)))
    try:
        account = Account(mint("AC"), "Raced", "token", T0)
        await stores[0].add_account(account)
        assert await stores[3].get_account(account.sid) == account
    finally:
        await asyncio.gather(*(store.aclose() for store in stores))


async def test_a_lookup_sees_every_change_committed_before_it(store_settings: Settings) -> None:
    # What revocation rests on: a link is refused the moment a DELETE through any
    # instance returns, whatever a lookup may have remembered of the row before.
    here, elsewhere = await open_store(store_settings), await open_store(store_settings)
    try:
        account = Account(mint("AC"), "Revoked", "token", T0)
        await here.add_account(account)
        (stored,) = await add(here, recording(account, 0))
        assert await here.get_recording(stored.sid) == stored  # looked up, perhaps kept
        failed = stored.replace(status=Status.FAILED, failure_reason="cut off")
        assert await here.update_recording(failed, expected=stored) is True
        assert await here.get_recording(stored.sid) == failed  # through its own writer
        when = T0 + timedelta(hours=1)
        await elsewhere.mark_deleted(stored.sid, when)
        assert await here.get_recording(stored.sid) == failed.replace(
            status=Status.DELETED, date_updated=when
        )
        gone = mint("RT")
        assert await here.get_recording(gone) is None
        await add(elsewhere, recording(account, 1, sid=gone))
        assert (await here.get_recording(gone)).sid == gone  # a miss is not kept either
    finally:
        await here.aclose()
        await elsewhere.aclose()


ANOTHER_PROCESS_DELETES = """
import asyncio, sys
from datetime import datetime
from gateway.config import Settings
from gateway.store import open_store

async def main(url, sid, when):
    store = await open_store(Settings.from_env({"GATEWAY_DATABASE_URL": url}))
    try:
        await store.mark_deleted(sid, datetime.fromisoformat(when))
    finally:
        await store.aclose()

asyncio.run(main(*sys.argv[1:]))
"""


async def test_a_sqlite_lookup_sees_another_process_commit_and_a_reset_log(
    tmp_path: Path,
) -> None:
    # SQLite lookups tell that nothing changed from the WAL index, which every
    # connection of every process maps; a checkpoint that empties the log rewrites it too.
    url = f"sqlite:///{tmp_path}/gateway.db"
    here = await open_store(Settings.from_env({"GATEWAY_DATABASE_URL": url}))
    try:
        account = Account(mint("AC"), "Revoked", "token", T0)
        await here.add_account(account)
        first, second = await add(here, recording(account, 0), recording(account, 1))
        assert await here.get_recording(first.sid) == first
        when = T0 + timedelta(hours=1)
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-c", ANOTHER_PROCESS_DELETES, url, first.sid, when.isoformat()
        )
        assert await process.wait() == 0
        deleted = first.replace(status=Status.DELETED, date_updated=when)
        assert await here.get_recording(first.sid) == deleted

        assert await here.get_recording(second.sid) == second
        other = sqlite3.connect(tmp_path / "gateway.db", isolation_level=None)
        try:
            other.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            other.execute("UPDATE recordings SET status = 'deleted' WHERE sid = ?", (second.sid,))
        finally:
            other.close()
        assert (await here.get_recording(second.sid)).status == Status.DELETED
    finally:
        await here.aclose()


# Another process's view of a WAL index: SQLite marks one in use with a shared fcntl
# lock on its "dead man switch" byte (os_unix.c: UNIX_SHM_DMS, byte 128); a process that
# can lock that byte exclusively takes the index for abandoned and rebuilds it.
IN_USE = """
import fcntl, sys
with open(sys.argv[1], "r+b") as shm:
    try:
        fcntl.lockf(shm, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, 128)
    except OSError:
        print("in use")
    else:
        print("abandoned")
"""


async def test_while_a_sqlite_store_is_open_other_processes_see_its_database_in_use(
    tmp_path: Path,
) -> None:
    # The store reads the WAL index itself (see the test above); closing the file it
    # read it through would drop every lock SQLite holds on it in this process.
    url = f"sqlite:///{tmp_path}/gateway.db"

    async def seen() -> str:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-c", IN_USE, f"{tmp_path}/gateway.db-shm", stdout=PIPE
        )
        out, _ = await process.communicate()
        return out.decode().strip()

    store = await open_store(Settings.from_env({"GATEWAY_DATABASE_URL": url}))
    again = await open_store(Settings.from_env({"GATEWAY_DATABASE_URL": url}))
    try:
        account = Account(mint("AC"), "Shared", "token", T0)
        await store.add_account(account)
        assert await store.get_account(account.sid) == account
        assert await seen() == "in use"
        await again.aclose()  # one of two stores in this process
        assert await store.get_account(account.sid) == account
        assert await seen() == "in use"
    finally:
        await store.aclose()
    # The last connection out removes the index, or leaves it to the next opener.
    assert not (tmp_path / "gateway.db-shm").exists() or await seen() == "abandoned"


async def test_postgres_connections_the_server_closed_are_not_used_again(
    postgres_url: str, postgres_dsn: str
) -> None:
    # A database restart or failover closes every connection the driver keeps between
    # statements; the next requests must get fresh ones, not a 500.
    store = await open_store(Settings.from_env({"GATEWAY_DATABASE_URL": postgres_url}))
    try:
        account = Account(mint("AC"), "Restarted", "token", T0)
        await store.add_account(account)
        assert await store.get_account(account.sid) == account
        admin = await asyncpg.connect(postgres_dsn)
        try:
            ended = await admin.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                "AND backend_type = 'client backend'"
            )
        finally:
            await admin.close()
        assert ended >= 1
        await asyncio.sleep(0.2)  # for the driver to hear of it
        for _ in range(3):
            assert await store.get_account(account.sid) == account
    finally:
        await store.aclose()


async def test_update_recording_is_a_compare_and_set_on_status_and_media(
    store: MetadataStore, account: Account
) -> None:
    (created,) = await add(
        store, recording(account, 0, status=Status.PROCESSING, size=0, media_key=None)
    )
    uploaded = created.replace(media_key="AC/RT/1.mka", size=10)
    assert await store.update_recording(uploaded, expected=created) is True
    # A step decided on the state before the upload loses.
    assert await store.update_recording(created.replace(size=5), expected=created) is False
    done = uploaded.replace(
        status=Status.COMPLETED, size=99, duration=3, media_etag='"new"',
        date_updated=T0 + timedelta(hours=1),
    )  # fmt: skip
    assert await store.update_recording(done, expected=uploaded) is True
    assert await store.get_recording(created.sid) == done
    failed = done.replace(status=Status.FAILED, failure_reason="too late")
    assert await store.update_recording(failed, expected=uploaded) is False
    assert await store.get_recording(created.sid) == done


async def test_janitor_queries_find_pending_media_and_purge_only_what_is_due(
    store: MetadataStore, account: Account
) -> None:
    kept, media_pending, purgeable, recent = await add(
        store, *(recording(account, minutes) for minutes in range(4))
    )
    for each, when in ((media_pending, T0), (purgeable, T0), (recent, T0 + timedelta(days=2))):
        await store.mark_deleted(each.sid, when)
    for each in (purgeable, recent):
        gone = await store.get_recording(each.sid)
        assert gone is not None
        assert await store.update_recording(gone.replace(media_key=None), expected=gone)
    assert [r.sid for r in await store.deleted_with_media(10)] == [media_pending.sid]
    assert await store.purge_deleted(before=T0 + timedelta(days=1)) == 1
    assert await store.get_recording(purgeable.sid) is None
    for still in (kept, media_pending, recent):
        assert await store.get_recording(still.sid) is not None


async def test_media_keys_names_the_stored_media_of_each_recording_asked(
    store: MetadataStore, account: Account
) -> None:
    stored, deleted, without = await add(
        store,
        recording(account, 0, media_key="AC/RT0.mka"),
        recording(account, 1, media_key="AC/RT1.mka"),
        recording(account, 2, status=Status.PROCESSING, size=0, media_key=None),
    )
    await store.mark_deleted(deleted.sid, T0)  # its media is still stored: it counts
    asked = [stored.sid, deleted.sid, without.sid, mint("RT")]
    assert await store.media_keys(asked) == {
        stored.sid: stored.media_key,
        deleted.sid: deleted.media_key,
    }
    assert await store.media_keys([]) == {}


async def test_sweep_lock_is_one_per_database(store_settings: Settings) -> None:
    # Two stores on one database: two instances, or two workers of one.
    first, second = await open_store(store_settings), await open_store(store_settings)
    try:
        async with first.sweep_lock() as mine:
            assert mine is True
            async with first.sweep_lock() as again, second.sweep_lock() as theirs:
                assert (again, theirs) == (False, False)
        async with second.sweep_lock() as theirs:
            assert theirs is True
    finally:
        await first.aclose()
        await second.aclose()


async def test_closing_does_not_wait_for_a_connection_never_given_back(
    store_settings: Settings,
) -> None:
    # A sweep cut short as the process stops keeps its connection: closing is bounded
    # by the database timeout all the same, rather than waiting on it for ever.
    settings = dataclasses.replace(store_settings, database_timeout=1.0)
    store = await open_store(settings)
    held = store.sweep_lock()
    assert await held.__aenter__() is True
    async with asyncio.timeout(10):
        await store.aclose()


def a_callback(of: Recording, event: str, due: datetime = T0) -> Callback:
    return Callback(
        id=mint("EV"),
        recording_sid=of.sid,
        account_sid=of.account_sid,
        event=event,
        url="https://app.example.com/events",
        method="POST",
        params={"RecordingSid": of.sid, "StatusCallbackEvent": event},
        created=due,
        due=due,
    )


async def test_callbacks_are_stored_only_with_the_state_change_they_report(
    store: MetadataStore, account: Account
) -> None:
    started = recording(account, 0, status=Status.PROCESSING)
    await store.add_recording(started, a_callback(started, "recording-started"))
    lost, stale = started.replace(status=Status.FAILED), started.replace(media_key="other")
    failed = a_callback(started, "recording-failed")
    assert not await store.update_recording(lost, stale, failed)
    done = started.replace(status=Status.COMPLETED)
    completed = a_callback(done, "recording-completed", T0 + timedelta(seconds=1))
    assert await store.update_recording(done, started, completed)
    for _ in range(2):  # deleting twice announces it once
        deleted = a_callback(done, "recording-deleted", T0 + timedelta(seconds=2))
        await store.mark_deleted(started.sid, T0, deleted)
    events = [c.event for c in await store.list_callbacks(started.sid, 10)]
    assert events == ["recording-started", "recording-completed", "recording-deleted"]
    stored = (await store.list_callbacks(None, 10))[0]
    assert stored == a_callback(started, "recording-started").replace(id=stored.id)


async def test_each_due_callback_is_claimed_by_one_instance_until_its_lease_ends(
    store_settings: Settings,
) -> None:
    first, second = await open_store(store_settings), await open_store(store_settings)
    try:
        account = Account(mint("AC"), "Claims", "token", T0)
        await first.add_account(account)
        rec = recording(account, 0)
        await first.add_recording(rec)
        due = [a_callback(rec, "recording-completed", T0 + timedelta(seconds=n)) for n in range(6)]
        later = a_callback(rec, "recording-deleted", T0 + timedelta(hours=1))
        for each in (*due, later):
            await first.update_recording(rec, rec, each)
        now, lease = T0 + timedelta(minutes=1), T0 + timedelta(minutes=2)
        claims = await asyncio.gather(
            first.claim_callbacks(now, lease, 4), second.claim_callbacks(now, lease, 4)
        )
        claimed = [c.id for claim in claims for c in claim]
        assert sorted(claimed) == sorted(c.id for c in due)  # each once, the later one not
        assert all(c.attempts == 1 for claim in claims for c in claim)
        assert await first.claim_callbacks(now, lease, 10) == []  # leased
        delivered = claims[0][0].replace(state=Delivery.DELIVERED, delivered=now)
        await first.finish_callback(delivered)
        again = await second.claim_callbacks(lease, lease + timedelta(minutes=1), 10)
        assert len(again) == 5  # the lease ran out; the delivered one stays done
        assert all(c.attempts == 2 for c in again)
    finally:
        await first.aclose()
        await second.aclose()


V4 = datetime(2026, 11, 30, 12, 0, 0, 123456, tzinfo=UTC)
V4_ACCOUNT = "AC" + "a" * 32


async def _write_version_4(settings: Settings) -> None:
    """Lay down the database that schema version 4's code wrote (a dump of one)."""
    dump = (Path(__file__).parent / "data" / "schema_v4.sql").read_text()
    statements = [part for part in dump.split(";\n") if part.strip()]
    if settings.uses_sqlite:
        db = sqlite3.connect(settings.sqlite_path)
        db.executescript(";\n".join([*statements, "PRAGMA user_version = 4", ""]))
        db.close()
        return
    connection = await asyncpg.connect(settings.database_url)
    try:
        for statement in statements:
            await connection.execute(statement)
        await connection.execute(
            "CREATE TABLE gateway_schema (version integer PRIMARY KEY, "
            "applied_at timestamptz NOT NULL DEFAULT now())"
        )
        await connection.execute("INSERT INTO gateway_schema (version) VALUES (1), (2), (3), (4)")
    finally:
        await connection.close()


async def test_a_database_written_by_schema_version_4_opens_with_nothing_lost(
    store_settings: Settings,
) -> None:
    await _write_version_4(store_settings)
    store = await open_store(store_settings)
    try:
        assert await store.get_account(V4_ACCOUNT) == Account(
            V4_ACCOUNT, "Before the upgrade", "f" * 32, V4
        )
        assert await store.get_api_key("SK" + "b" * 32) == ApiKey(
            "SK" + "b" * 32, V4_ACCOUNT, "0" * 64, V4
        )
        completed = Recording(
            sid="RT" + "1" * 32,
            account_sid=V4_ACCOUNT,
            status=Status.COMPLETED,
            date_created=V4,
            date_updated=V4 + timedelta(seconds=5),
            source_sid="MT" + "2" * 32,
            type=MediaType.VIDEO,
            container_format=Container.MKV,
            codec=Codec.VP8,
            duration=42,
            size=123456,
            track_name="camera",
            offset=1200,
            room_sid="RM" + "3" * 32,
            participant_sid="PA" + "4" * 32,
            status_callback="https://app.example.com/cb",
            status_callback_method="POST",
            media_key=f"{V4_ACCOUNT}/RT{'1' * 32}/abcdef.mkv",
            media_etag='"0123456789abcdef0123456789abcdef"',
        )
        failed = Recording(
            sid="RT" + "5" * 32,
            account_sid=V4_ACCOUNT,
            status=Status.FAILED,
            date_created=V4 - timedelta(days=1),
            date_updated=V4,
            source_sid="MT" + "6" * 32,
            type=MediaType.AUDIO,
            container_format=Container.MKA,
            codec=Codec.OPUS,
            duration=0,
            size=0,
            track_name="microphone",
            offset=0,
            failure_reason="the uploaded media is empty",
        )
        page = await store.list_recordings(V4_ACCOUNT, RecordingFilter(), None, 10)
        assert page == [completed, failed]
        assert await store.list_callbacks(completed.sid, 10) == [
            Callback(
                id="cb-1",
                recording_sid=completed.sid,
                account_sid=V4_ACCOUNT,
                event="recording-completed",
                url="https://app.example.com/cb",
                method="POST",
                params={
                    "RecordingSid": completed.sid,
                    "StatusCallbackEvent": "recording-completed",
                },
                created=V4,
                due=V4 + timedelta(seconds=1),
                attempts=2,
                state=Delivery.DELIVERED,
                delivered=V4 + timedelta(seconds=2),
            )
        ]
        assert store.schema_version == len(MIGRATIONS)  # brought up to date
    finally:
        await store.aclose()
