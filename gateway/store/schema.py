"""The tables, declared once: each column's name, how a value goes in and comes out, and
whether a state change may rewrite it. The SQL lists and row mapping derive from here."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, Final, Generic, TypeVar

from gateway.instants import from_micros, to_micros
from gateway.models import (
    Account,
    ApiKey,
    Callback,
    Codec,
    Container,
    Delivery,
    MediaType,
    Recording,
    Status,
)

R = TypeVar("R")
DECODED_ROWS: Final = 1024

# One entry per version, in SQL that SQLite and PostgreSQL both take. Instants are
# bigint microseconds (gateway.instants), never a database's own time type.
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


def _same(value: Any) -> Any:
    return value


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    field: str = ""  # the record's attribute, where it is not `name`
    # Record value to database value and back; None stays None either way.
    encode: Callable[[Any], Any] = _same
    decode: Callable[[Any], Any] = _same
    mutable: bool = False  # may a state change rewrite it?

    @property
    def attribute(self) -> str:
        return self.field or self.name


def _instant(name: str, *, mutable: bool = False) -> Column:
    return Column(name, encode=to_micros, decode=from_micros, mutable=mutable)


def _enum(name: str, kind: type[Enum], *, mutable: bool = False) -> Column:
    # A dict's lookup, not the enum's constructor: a row has four of them, on every read.
    members = {member.value: member for member in kind}
    return Column(name, encode=str, decode=members.__getitem__, mutable=mutable)


class Table(Generic[R]):
    """A table and the record type its rows are, with the SQL derived from its columns
    (placeholders are `?`; drivers that number theirs rewrite them). The first column
    is the primary key."""

    def __init__(self, name: str, record: Callable[..., R], *columns: Column) -> None:
        self.name, self._record, self.columns = name, record, columns
        self.column_list = ", ".join(column.name for column in columns)
        self.select = f"SELECT {self.column_list} FROM {name}"
        self.select_by_key = f"{self.select} WHERE {columns[0].name} = ?"
        marks = ", ".join("?" * len(columns))
        self.insert = f"INSERT INTO {name} ({self.column_list}) VALUES ({marks})"
        self.mutable = tuple(column for column in columns if column.mutable)
        self.assign_mutable = ", ".join(f"{column.name} = ?" for column in self.mutable)
        self._attributes = tuple(column.attribute for column in columns)
        self._decoded = tuple(
            (index, column.decode)
            for index, column in enumerate(columns)
            if column.decode is not _same
        )
        # Every request reads its row afresh (that is what makes revocation instant),
        # but the same row decodes to the same immutable record: that part is
        # remembered, keyed by the row's values.
        self._record_of = functools.lru_cache(maxsize=DECODED_ROWS)(self._decode)

    def row(self, record: R) -> tuple[Any, ...]:
        return _encoded(record, self.columns)

    def mutable_row(self, record: R) -> tuple[Any, ...]:
        return _encoded(record, self.mutable)

    def record(self, row: Sequence[Any]) -> R:
        return self._record_of(tuple(row))

    def _decode(self, row: tuple[Any, ...]) -> R:
        values = list(row)
        for index, decode in self._decoded:
            if values[index] is not None:
                values[index] = decode(values[index])
        return self._record(**dict(zip(self._attributes, values, strict=True)))


def _encoded(record: object, columns: Sequence[Column]) -> tuple[Any, ...]:
    values = (getattr(record, column.attribute) for column in columns)
    return tuple(None if v is None else c.encode(v) for c, v in zip(columns, values, strict=True))


ACCOUNTS: Final = Table(
    "accounts",
    Account,
    Column("sid"),
    Column("friendly_name"),
    Column("auth_token"),
    _instant("date_created"),
)
API_KEYS: Final = Table(
    "api_keys",
    ApiKey,
    Column("sid"),
    Column("account_sid"),
    Column("secret_hash"),
    _instant("date_created"),
)
RECORDINGS: Final = Table(
    "recordings",
    Recording,
    Column("sid"),
    Column("account_sid"),
    _enum("status", Status, mutable=True),
    _instant("date_created"),
    _instant("date_updated", mutable=True),
    Column("source_sid"),
    _enum("type", MediaType),
    _enum("container_format", Container),
    _enum("codec", Codec),
    Column("duration", mutable=True),
    Column("size", mutable=True),
    Column("track_name"),
    Column("offset_ms", field="offset"),  # OFFSET is an SQL keyword
    Column("room_sid"),
    Column("participant_sid"),
    Column("status_callback"),
    Column("status_callback_method"),
    Column("media_key", mutable=True),
    Column("media_etag", mutable=True),
    Column("failure_reason", mutable=True),
)
CALLBACKS: Final = Table(
    "callbacks",
    Callback,
    Column("id"),
    Column("recording_sid"),
    Column("account_sid"),
    Column("event"),
    Column("url"),
    Column("method"),
    Column("params", encode=lambda params: json.dumps(params, sort_keys=True), decode=json.loads),
    _instant("created"),
    _instant("due", mutable=True),
    Column("attempts"),
    _enum("state", Delivery, mutable=True),
    _instant("delivered", mutable=True),
    Column("last_error", mutable=True),
)
