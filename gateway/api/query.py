"""Query parameters of the public API, parsed into domain values or refused with 400."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final, TypeVar

from multidict import MultiMapping

from gateway import sids
from gateway.api.page_tokens import decode_cursor
from gateway.errors import InvalidParameter
from gateway.media_links import MediaLinkRequest
from gateway.models import Cursor, MediaType, RecordingFilter, Status

DEFAULT_PAGE_SIZE: Final = 50
MAX_PAGE_SIZE: Final = 1000
DEFAULT_TTL: Final = 600
MAX_TTL: Final = 3600

E = TypeVar("E", Status, MediaType)


@dataclass(frozen=True, slots=True)
class ListQuery:
    where: RecordingFilter
    page_size: int
    page: int
    cursor: Cursor | None
    page_token: str | None
    # The filters in one canonical spelling, repeated in every paging URL.
    filter_params: tuple[tuple[str, str], ...]


# More than any bound here needs, and far fewer than the 4,300 at which int() refuses.
_MAX_DIGITS: Final = 10


def _integer(
    query: MultiMapping[str], name: str, default: int, low: int, high: int, *, clamp: bool = False
) -> int:
    """`name` as a whole number from `low` to `high`; above `high`, `high` if `clamp`."""
    raw = query.get(name)
    if raw is None:
        return default
    # ASCII digits only (RFC 5234 DIGIT): int() would also take "1_0", " 5", "+5", "\n5"
    # and the digits of other scripts.
    if not (raw.isascii() and raw.isdigit()):
        raise InvalidParameter(name, f"must be a whole number from {low} to {high}")
    digits = raw.lstrip("0") or "0"
    value = int(digits) if len(digits) <= _MAX_DIGITS else high + 1
    if value > high and clamp:
        return high
    if not low <= value <= high:
        raise InvalidParameter(name, f"must be a whole number from {low} to {high}")
    return value


def _enum(query: MultiMapping[str], name: str, kind: type[E]) -> E | None:
    raw = query.get(name)
    if raw is None:
        return None
    try:
        return kind(raw)
    except ValueError:
        allowed = ", ".join(member.value for member in kind)
        raise InvalidParameter(name, f"{raw!r} is not one of {allowed}") from None


def _date(query: MultiMapping[str], name: str) -> datetime | None:
    raw = query.get(name)
    if raw is None:
        return None
    try:
        moment = datetime.fromisoformat(raw)
        # A date-time without an offset is read as UTC, as Twilio reads it.
        return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    except (ValueError, OverflowError):
        # OverflowError: an offset that moves year 1 or 9999 out of datetime's range.
        raise InvalidParameter(name, f"{raw!r} is not an ISO 8601 date-time") from None


def _sid(name: str, raw: str) -> str:
    if not sids.is_sid(raw):
        raise InvalidParameter(name, f"{raw!r} is not a SID")
    return raw


def _grouping_sids(query: MultiMapping[str]) -> tuple[str, ...]:
    found: list[str] = []
    for raw in query.getall("GroupingSid", []):
        # Some clients send the whole list as one JSON array string: ["RM…", "PA…"].
        if raw.startswith("["):
            try:
                values = json.loads(raw)
            except (ValueError, RecursionError):
                raise InvalidParameter("GroupingSid", f"{raw!r} is not a JSON array") from None
            if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
                raise InvalidParameter("GroupingSid", "the JSON array must hold SID strings")
            found.extend(values)
        else:
            found.append(raw)
    return tuple(dict.fromkeys(_sid("GroupingSid", sid) for sid in found))


def parse_list(query: MultiMapping[str], room_sid: str | None = None) -> ListQuery:
    source_sid = query.get("SourceSid")
    where = RecordingFilter(
        status=_enum(query, "Status", Status),
        source_sid=None if source_sid is None else _sid("SourceSid", source_sid),
        grouping_sids=_grouping_sids(query),
        created_after=_date(query, "DateCreatedAfter"),
        created_before=_date(query, "DateCreatedBefore"),
        media_type=_enum(query, "MediaType", MediaType),
        room_sid=room_sid,
    )
    # Both official helper libraries send PageSize=limit for list(limit=1500): a page
    # of at most 1000 answers them, and they go on to the next_page_url.
    page_size = _integer(query, "PageSize", DEFAULT_PAGE_SIZE, 1, MAX_PAGE_SIZE, clamp=True)
    page = _integer(query, "Page", 0, 0, 2**31)
    token = query.get("PageToken")
    if page > 0 and token is None:
        raise InvalidParameter("Page", "pages after the first are reached with their PageToken")
    return ListQuery(
        where=where,
        page_size=page_size,
        page=page,
        cursor=None if token is None else decode_cursor(token),
        page_token=token,
        filter_params=_filter_params(where),
    )


def _filter_params(where: RecordingFilter) -> tuple[tuple[str, str], ...]:
    def stamp(moment: datetime) -> str:
        return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")

    optional = (
        ("Status", where.status),
        ("SourceSid", where.source_sid),
        ("DateCreatedAfter", where.created_after and stamp(where.created_after)),
        ("DateCreatedBefore", where.created_before and stamp(where.created_before)),
        ("MediaType", where.media_type),
    )
    pairs = [(name, str(value)) for name, value in optional if value is not None]
    pairs.extend(("GroupingSid", sid) for sid in where.grouping_sids)
    return tuple(pairs)


def parse_media_link(query: MultiMapping[str]) -> MediaLinkRequest:
    return MediaLinkRequest(
        ttl=_integer(query, "Ttl", DEFAULT_TTL, 1, MAX_TTL),
        content_disposition=query.get("ContentDisposition"),
    )
