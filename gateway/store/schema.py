"""The tables, declared once: each is a record type of gateway.models, its columns the
record's fields in order, each stored as its type says. The SQL lists and row mapping
derive from here; the DDL is in migrations/."""

from __future__ import annotations

import functools
import itertools
import json
import pkgutil
import types
import typing
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any, Final, Generic, TypeVar

from gateway.instants import from_micros, to_micros
from gateway.models import Account, ApiKey, Callback, Recording

R = TypeVar("R")
DECODED_ROWS: Final = 1024


def _migrations() -> Iterator[str]:
    # Through the package's loader, as its code is read: a store opened on the event loop
    # imports its driver there. 0001.sql, 0002.sql, … up to the first number missing.
    for version in itertools.count(1):
        try:
            script = pkgutil.get_data(__name__, f"migrations/{version:04}.sql")
        except FileNotFoundError:
            return
        if script is None:
            raise ImportError(f"{__name__} cannot read its migrations")
        yield script.decode()


# One script per version, in SQL that SQLite and PostgreSQL both take; `;` only ends
# statements, as sqlite.py splits scripts on it.
MIGRATIONS: Final = tuple(_migrations())


def _same(value: Any) -> Any:
    return value


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    attribute: str
    # Record value to database value and back; None stays None either way.
    encode: Callable[[Any], Any] = _same
    decode: Callable[[Any], Any] = _same
    mutable: bool = False  # may a state change rewrite it?


def _column(attribute: str, kind: Any, mutable: bool) -> Column:
    if isinstance(kind, types.UnionType):  # `X | None`: stored as X, or NULL
        (kind,) = (member for member in typing.get_args(kind) if member is not types.NoneType)
    name = "offset_ms" if attribute == "offset" else attribute  # OFFSET is an SQL keyword
    if kind is datetime:
        return Column(name, attribute, to_micros, from_micros, mutable)
    if typing.get_origin(kind) is dict:
        encode = functools.partial(json.dumps, sort_keys=True)
        return Column(name, attribute, encode, json.loads, mutable)
    if isinstance(kind, type) and issubclass(kind, Enum):
        # A dict's lookup, not the enum's constructor: a row has four of them, on every read.
        members = {member.value: member for member in kind}
        return Column(name, attribute, str, members.__getitem__, mutable)
    return Column(name, attribute, mutable=mutable)


class Table(Generic[R]):
    """A table and the record type its rows are; its SQL has `?` placeholders (drivers that
    number theirs rewrite them), and its first column is the primary key."""

    def __init__(self, name: str, record: type[R], mutable: Collection[str] = ()) -> None:
        # The records are plain dataclasses: their annotations are their fields, in order.
        fields = typing.get_type_hints(record).items()
        columns = tuple(_column(field, kind, field in mutable) for field, kind in fields)
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


ACCOUNTS: Final = Table("accounts", Account)
API_KEYS: Final = Table("api_keys", ApiKey)
# A state change may rewrite a recording's state and its media's; the rest is written once.
_STATE: Final = ("status", "date_updated", "failure_reason")
_MEDIA: Final = ("media_key", "media_etag", "duration", "size")
RECORDINGS: Final = Table("recordings", Recording, mutable={*_STATE, *_MEDIA})
CALLBACKS: Final = Table("callbacks", Callback, mutable={"due", "state", "delivered", "last_error"})
