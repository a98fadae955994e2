"""Instants as the gateway keeps them: aware UTC datetimes, stored and carried in tokens
as whole microseconds since the epoch (exact, sortable, the same in every database)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Final

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


def utc(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)


def to_micros(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(microseconds=1)


def from_micros(micros: int) -> datetime:
    """Raises OverflowError for a count outside datetime's years 1 to 9999."""
    return _EPOCH + timedelta(microseconds=micros)
