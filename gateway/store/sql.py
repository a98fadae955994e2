"""SQL shared by the relational stores: the recordings table and its list query."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from gateway.models import (
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

# The schema, one entry per version, in SQL that SQLite and PostgreSQL both take.
# Instants are bigint microseconds (see to_micros), never a database's own time type.
MIGRATIONS: Final = (
    """
    CREATE TABLE accounts (
        sid text PRIMARY KEY,
        friendly_name text NOT NULL,
        auth_token text NOT NULL,
        date_created bigint NOT NULL
    );
    CREATE TABLE api_keys (
        sid text PRIMARY KEY,
        account_sid text NOT NULL REFERENCES accounts (sid),
        secret_hash text NOT NULL,
        date_created bigint NOT NULL
    );
    CREATE TABLE recordings (
        sid text PRIMARY KEY,
        account_sid text NOT NULL REFERENCES accounts (sid),
        status text NOT NULL,
        date_created bigint NOT NULL,
        date_updated bigint NOT NULL,
        source_sid text NOT NULL,
        type text NOT NULL,
        container_format text NOT NULL,
        codec text NOT NULL,
        duration integer,
        size bigint NOT NULL,
        track_name text NOT NULL,
        offset_ms bigint NOT NULL,
        room_sid text,
        participant_sid text,
        status_callback text,
        status_callback_method text,
        media_key text,
        media_etag text
    );
    -- One index per filter, each ending in the (date_created, sid) paging order, so
    -- a deep keyset page is an index range scan like the first one.
    CREATE INDEX recordings_by_date ON recordings (account_sid, date_created, sid);
    CREATE INDEX recordings_by_room ON recordings (account_sid, room_sid, date_created, sid);
    CREATE INDEX recordings_by_participant
        ON recordings (account_sid, participant_sid, date_created, sid);
    CREATE INDEX recordings_by_source ON recordings (account_sid, source_sid, date_created, sid);
    CREATE INDEX recordings_by_status ON recordings (account_sid, status, date_created, sid);
    """,
    "ALTER TABLE recordings ADD COLUMN failure_reason text",
    "CREATE INDEX recordings_deleted ON recordings (date_updated) WHERE status = 'deleted'",
    """
    CREATE TABLE callbacks (
        id text PRIMARY KEY,
        recording_sid text NOT NULL,
        account_sid text NOT NULL,
        event text NOT NULL,
        url text NOT NULL,
        method text NOT NULL,
        params text NOT NULL,
        created bigint NOT NULL,
        due bigint NOT NULL,
        attempts integer NOT NULL,
        state text NOT NULL,
        delivered bigint,
        last_error text
    );
    CREATE INDEX callbacks_due ON callbacks (due) WHERE state = 'pending';
    CREATE INDEX callbacks_by_recording ON callbacks (recording_sid, created)
    """,
)

RECORDING_COLUMNS: Final = (
    "sid, account_sid, status, date_created, date_updated, source_sid, type, "
    "container_format, codec, duration, size, track_name, offset_ms, room_sid, "
    "participant_sid, status_callback, status_callback_method, media_key, media_etag, "
    "failure_reason"
)

CALLBACK_COLUMNS: Final = (
    "id, recording_sid, account_sid, event, url, method, params, created, due, attempts, "
    "state, delivered, last_error"
)
INSERT_CALLBACK: Final = (
    f"INSERT INTO callbacks ({CALLBACK_COLUMNS}) VALUES ({', '.join('?' * 13)})"
)
# Claiming pushes `due` out by a lease and counts the attempt, in one statement: an
# instance that dies mid-delivery leaves the event to be claimed again when it expires.
CLAIM_CALLBACKS: Final = (
    "UPDATE callbacks SET due = ?, attempts = attempts + 1 WHERE id IN ("
    "SELECT id FROM callbacks WHERE state = 'pending' AND due <= ? ORDER BY due LIMIT ? {lock}"
    f") RETURNING {CALLBACK_COLUMNS}"
)
FINISH_CALLBACK: Final = (
    "UPDATE callbacks SET due = ?, state = ?, delivered = ?, last_error = ? WHERE id = ?"
)
LIST_CALLBACKS: Final = (
    f"SELECT {CALLBACK_COLUMNS} FROM callbacks WHERE (? = '' OR recording_sid = ?) "
    "ORDER BY created, id LIMIT ?"
)

# The janitor's queries, with {} where each store puts its placeholder.
# Completed with "IN (…)" or "= ANY(…)", whichever the database takes for a list.
MEDIA_KEYS: Final = "SELECT sid, media_key FROM recordings WHERE media_key IS NOT NULL AND sid {}"
DELETED_WITH_MEDIA: Final = (
    f"SELECT {RECORDING_COLUMNS} FROM recordings "
    "WHERE status = 'deleted' AND media_key IS NOT NULL ORDER BY date_updated LIMIT {}"
)
PURGE_DELETED: Final = (
    "DELETE FROM recordings WHERE status = 'deleted' AND media_key IS NULL AND date_updated < {}"
)


_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


def to_micros(moment: datetime) -> int:
    """Instants are kept as integer microseconds since the epoch: exact and sortable."""
    return (moment - _EPOCH) // timedelta(microseconds=1)


def from_micros(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)


def recording_row(r: Recording) -> tuple[Any, ...]:
    return (
        r.sid, r.account_sid, r.status.value, to_micros(r.date_created),
        to_micros(r.date_updated), r.source_sid, r.type.value, r.container_format.value,
        r.codec.value, r.duration, r.size, r.track_name, r.offset, r.room_sid,
        r.participant_sid, r.status_callback, r.status_callback_method, r.media_key,
        r.media_etag, r.failure_reason,
    )  # fmt: skip


def recording_from_row(row: Sequence[Any]) -> Recording:
    return Recording(
        sid=row[0],
        account_sid=row[1],
        status=Status(row[2]),
        date_created=from_micros(row[3]),
        date_updated=from_micros(row[4]),
        source_sid=row[5],
        type=MediaType(row[6]),
        container_format=Container(row[7]),
        codec=Codec(row[8]),
        duration=row[9],
        size=row[10],
        track_name=row[11],
        offset=row[12],
        room_sid=row[13],
        participant_sid=row[14],
        status_callback=row[15],
        status_callback_method=row[16],
        media_key=row[17],
        media_etag=row[18],
        failure_reason=row[19],
    )


# What a state change may rewrite; the rest of a recording is fixed at creation.
MUTABLE_COLUMNS: Final = (
    "status", "date_updated", "duration", "size", "media_key", "media_etag", "failure_reason",
)  # fmt: skip


# The compare half of update_recording's compare-and-set; '' stands for no media.
EXPECTED_STATE: Final = "status = {} AND coalesce(media_key, '') = {}"


def expected_values(r: Recording) -> tuple[str, str]:
    return r.status.value, r.media_key or ""


def mutable_values(r: Recording) -> tuple[Any, ...]:
    return (
        r.status.value, to_micros(r.date_updated), r.duration, r.size, r.media_key,
        r.media_etag, r.failure_reason,
    )  # fmt: skip


def list_query(
    account_sid: str,
    where: RecordingFilter,
    after: Cursor | None,
    limit: int,
    placeholder: Callable[[int], str],
) -> tuple[str, list[Any]]:
    """The keyset query behind every recordings list, for `placeholder(n)` style binds.

    The order (date_created, sid) is unique, so a cursor names one exact position and
    a deep page costs what the first does on the (account_sid, date_created, sid) index.
    """
    args: list[Any] = []

    def bind(value: Any) -> str:
        args.append(value)
        return placeholder(len(args))

    clauses = [f"account_sid = {bind(account_sid)}"]
    if where.status is None:
        clauses.append(f"status <> {bind(Status.DELETED.value)}")
    else:
        clauses.append(f"status = {bind(where.status.value)}")
    if where.source_sid is not None:
        clauses.append(f"source_sid = {bind(where.source_sid)}")
    if where.room_sid is not None:
        clauses.append(f"room_sid = {bind(where.room_sid)}")
    for sid in where.grouping_sids:
        value = bind(sid)
        clauses.append(f"(room_sid = {value} OR participant_sid = {value})")
    if where.created_after is not None:
        clauses.append(f"date_created >= {bind(to_micros(where.created_after))}")
    if where.created_before is not None:
        clauses.append(f"date_created < {bind(to_micros(where.created_before))}")
    if where.media_type is not None:
        clauses.append(f"type = {bind(where.media_type.value)}")
    order = "DESC"
    if after is not None:
        comparison = "<" if after.forward else ">"
        order = "DESC" if after.forward else "ASC"
        created, sid = bind(to_micros(after.date_created)), bind(after.sid)
        clauses.append(f"(date_created, sid) {comparison} ({created}, {sid})")
    sql = (
        f"SELECT {RECORDING_COLUMNS} FROM recordings WHERE {' AND '.join(clauses)} "
        f"ORDER BY date_created {order}, sid {order} LIMIT {bind(limit)}"
    )
    return sql, args


def numbered(sql: str) -> str:
    """`?` placeholders as PostgreSQL's $1, $2, …; the SQL here has no literal `?`."""
    parts = sql.split("?")
    return "".join(f"{part}${n}" for n, part in enumerate(parts[:-1], start=1)) + parts[-1]


def callback_row(c: Callback) -> tuple[Any, ...]:
    delivered = None if c.delivered is None else to_micros(c.delivered)
    return (
        c.id, c.recording_sid, c.account_sid, c.event, c.url, c.method,
        json.dumps(c.params, sort_keys=True), to_micros(c.created), to_micros(c.due),
        c.attempts, c.state.value, delivered, c.last_error,
    )  # fmt: skip


def callback_from_row(row: Sequence[Any]) -> Callback:
    return Callback(
        id=row[0],
        recording_sid=row[1],
        account_sid=row[2],
        event=row[3],
        url=row[4],
        method=row[5],
        params=json.loads(row[6]),
        created=from_micros(row[7]),
        due=from_micros(row[8]),
        attempts=row[9],
        state=Delivery(row[10]),
        delivered=None if row[11] is None else from_micros(row[11]),
        last_error=row[12],
    )


def finish_values(c: Callback) -> tuple[Any, ...]:
    delivered = None if c.delivered is None else to_micros(c.delivered)
    return to_micros(c.due), c.state.value, delivered, c.last_error, c.id
