"""Conditional requests, evaluated in the order of RFC 9110 §13.2.2.

`headers` is any case-insensitive mapping, such as aiohttp's request headers.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from enum import Enum, auto
from typing import Final

_ASCTIME: Final = re.compile(
    r"[A-Za-z]{3} [A-Za-z]{3} [ 0-9][0-9] [0-9]{2}:[0-9]{2}:[0-9]{2} [0-9]{4}"
)


class Decision(Enum):
    SEND = auto()
    NOT_MODIFIED = auto()
    PRECONDITION_FAILED = auto()


def _etags(header: str) -> list[str]:
    return [tag.strip() for tag in header.split(",") if tag.strip()]


def _weak_match(tag: str, etag: str) -> bool:
    return tag.removeprefix("W/") == etag.removeprefix("W/")


def _strong_match(tag: str, etag: str) -> bool:
    # §8.8.3.2: strong comparison; a weak tag never matches, not even itself.
    return tag == etag and not tag.startswith("W/")


def _http_date(header: str | None) -> datetime | None:
    """An HTTP-date (§5.6.7), or None for anything else, which §13.1.3-4 ignore."""
    if not header:
        return None
    header = header.strip()
    # IMF-fixdate and RFC 850 dates say GMT; asctime says no zone but means UTC too.
    if not (header.endswith(" GMT") or _ASCTIME.fullmatch(header)):
        return None
    try:
        moment = parsedate_to_datetime(header)
    except (TypeError, ValueError):
        return None
    return moment.replace(tzinfo=UTC)


def evaluate(headers: Mapping[str, str], etag: str, last_modified: datetime) -> Decision:
    """What to answer a GET or HEAD whose representation has `etag` and `last_modified`.

    `last_modified` must carry whole seconds, as the Last-Modified header does.
    """
    if_match = headers.get("If-Match")
    if if_match is not None:
        # §13.1.1: strong comparison; "*" matches any current representation.
        tags = _etags(if_match)
        if "*" not in tags and not any(_strong_match(tag, etag) for tag in tags):
            return Decision.PRECONDITION_FAILED
    else:
        unmodified_since = _http_date(headers.get("If-Unmodified-Since"))
        if unmodified_since is not None and last_modified > unmodified_since:
            return Decision.PRECONDITION_FAILED  # §13.1.4
    if_none_match = headers.get("If-None-Match")
    if if_none_match is not None:
        # §13.1.2: weak comparison; for GET and HEAD a match means 304.
        tags = _etags(if_none_match)
        if "*" in tags or any(_weak_match(tag, etag) for tag in tags):
            return Decision.NOT_MODIFIED
    else:
        modified_since = _http_date(headers.get("If-Modified-Since"))
        if modified_since is not None and last_modified <= modified_since:
            return Decision.NOT_MODIFIED  # §13.1.3
    return Decision.SEND


def range_applies(headers: Mapping[str, str], etag: str, last_modified: datetime) -> bool:
    """Whether a Range header may be honoured given If-Range (§13.1.5)."""
    if_range = headers.get("If-Range")
    if if_range is None:
        return True
    if_range = if_range.strip()
    if if_range.startswith(('"', "W/")):
        return _strong_match(if_range, etag)
    validator = _http_date(if_range)
    return validator is not None and validator == last_modified
