"""Query parameters of the public API, parsed into domain values or refused with 400."""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final, TypeVar
from urllib.parse import urlsplit

from multidict import MultiMapping

from gateway import sids
from gateway.errors import InvalidParameter
from gateway.hosts import parse_host
from gateway.ingestion import Declaration
from gateway.instants import from_micros, to_micros
from gateway.media_links import MediaLinkRequest
from gateway.models import Codec, Container, Cursor, MediaType, RecordingFilter, Status

DEFAULT_PAGE_SIZE: Final = 50
MAX_PAGE_SIZE: Final = 1000
DEFAULT_TTL: Final = 600
MAX_TTL: Final = 3600
# Twilio's limit on a track's name.
MAX_TRACK_NAME: Final = 128

E = TypeVar("E", Status, MediaType)
M = TypeVar("M", MediaType, Codec, Container)


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


# Direction, microseconds since the epoch (negative before 1970), recording SID.
_CURSOR: Final = re.compile(r"([np])(-?[0-9]{1,19}):(RT[0-9a-fA-F]{32})")


def encode_cursor(cursor: Cursor) -> str:
    text = f"{'n' if cursor.forward else 'p'}{to_micros(cursor.date_created)}:{cursor.sid}"
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor(token: str) -> Cursor:
    refused = InvalidParameter("PageToken", "is not a token this service issued")
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise refused from None
    match = _CURSOR.fullmatch(text)
    if match is None:
        raise refused
    direction, micros, sid = match.groups()
    try:
        created = from_micros(int(micros))
    except OverflowError:
        raise refused from None
    return Cursor(created, sid, forward=direction == "n")


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


def _text(body: dict[str, object], name: str) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidParameter(name, "must be a string")
    # JSON's \ud800 escapes decode to lone surrogates, which no database stores, and
    # PostgreSQL's text holds no NUL.
    if "\x00" in value or not _encodable(value):
        raise InvalidParameter(name, "must be Unicode text without NUL characters")
    return value


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _callback_url(body: dict[str, object]) -> str | None:
    url = _text(body, "status_callback")
    if url is None:
        return None
    refused = InvalidParameter("status_callback", "must be an http(s) URL with a valid host")
    # RFC 3986 §2 has no place for controls or spaces, and urlsplit would quietly drop
    # some of them, checking another URL than the one stored.
    if any(char <= " " or char == "\x7f" for char in url):
        raise refused
    try:
        parts = urlsplit(url)
        # The authority without its userinfo, which a callback URL may carry.
        parse_host(parts.netloc.rpartition("@")[2])
    except (ValueError, InvalidParameter):
        raise refused from None
    if parts.scheme not in ("http", "https"):
        raise refused
    return url


def _required(body: dict[str, object], name: str) -> str:
    value = _text(body, name)
    if value is None:
        raise InvalidParameter(name, "is required")
    return value


def _member(body: dict[str, object], name: str, kind: type[M]) -> M:
    raw = _required(body, name)
    try:
        return kind(raw)
    except ValueError:
        allowed = ", ".join(member.value for member in kind)
        raise InvalidParameter(name, f"{raw!r} is not one of {allowed}") from None


def _body_sid(name: str, value: object, prefix: str) -> str:
    if not isinstance(value, str) or not sids.is_sid(value, prefix):
        raise InvalidParameter(name, f"must be a {prefix} SID")
    return value


def parse_declaration(body: object) -> Declaration:
    """A recorder's JSON, in the public representation's field names."""
    if not isinstance(body, dict):
        raise InvalidParameter("body", "must be a JSON object")
    groups = body.get("grouping_sids") or {}
    if not isinstance(groups, dict):
        raise InvalidParameter("grouping_sids", "must be an object")
    room_sid, participant_sid = groups.get("room_sid"), groups.get("participant_sid")
    callback = _callback_url(body)
    method = _text(body, "status_callback_method")
    if method not in (None, "GET", "POST"):
        raise InvalidParameter("status_callback_method", "must be GET or POST")
    offset = body.get("offset", 0)
    if not isinstance(offset, int) or isinstance(offset, bool) or not 0 <= offset < 2**63:
        # The schema's int64, which is also what the databases keep.
        raise InvalidParameter("offset", "must be a whole number of milliseconds, 0 or more")
    track_name = _text(body, "track_name")
    if track_name is not None and len(track_name) > MAX_TRACK_NAME:
        raise InvalidParameter("track_name", f"must be at most {MAX_TRACK_NAME} characters")
    return Declaration(
        account_sid=_body_sid("account_sid", body.get("account_sid"), "AC"),
        type=_member(body, "type", MediaType),
        codec=_member(body, "codec", Codec),
        container_format=_member(body, "container_format", Container),
        source_sid=_body_sid("source_sid", body.get("source_sid"), "MT"),
        room_sid=None if room_sid is None else _body_sid("room_sid", room_sid, "RM"),
        participant_sid=(
            None if participant_sid is None else _body_sid("participant_sid", participant_sid, "PA")
        ),
        track_name=track_name,
        offset=offset,
        status_callback=callback,
        status_callback_method=(method or "POST") if callback is not None else None,
    )
