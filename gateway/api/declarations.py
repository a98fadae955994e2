"""The recorders' JSON bodies, checked field by field into a Declaration."""

from __future__ import annotations

from typing import Final, TypeVar
from urllib.parse import urlsplit

from gateway import sids
from gateway.errors import InvalidParameter
from gateway.hosts import parse_host
from gateway.ingestion import Declaration
from gateway.models import Codec, Container, MediaType

# Twilio's limit on a track's name.
MAX_TRACK_NAME: Final = 128

M = TypeVar("M", MediaType, Codec, Container)


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
