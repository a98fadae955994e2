"""Conditional requests, evaluated in the order of RFC 9110 §13.2.2.

`headers` is any case-insensitive mapping, such as aiohttp's request headers.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from enum import Enum, auto
from typing import Final

_MONTHS: Final = {
    name: number
    for number, name in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1
    )
}
# RFC 9110 §5.6.7's three forms, DIGIT being ASCII only: IMF-fixdate
# ("Sun, 06 Nov 1994 08:49:37 GMT"), obsolete RFC 850 ("Sunday, 06-Nov-94 08:49:37 GMT")
# and asctime ("Sun Nov  6 08:49:37 1994").
_TIME: Final = r"([0-9]{2}):([0-9]{2}):([0-9]{2})"
_IMF_FIXDATE: Final = re.compile(
    rf"[A-Za-z]{{3}}, ([0-9]{{2}}) ([A-Za-z]{{3}}) ([0-9]{{4}}) {_TIME} GMT"
)
_RFC_850: Final = re.compile(
    rf"[A-Za-z]{{6,9}}, ([0-9]{{2}})-([A-Za-z]{{3}})-([0-9]{{2}}) {_TIME} GMT"
)
_ASCTIME: Final = re.compile(rf"[A-Za-z]{{3}} ([A-Za-z]{{3}}) ([ 0-9][0-9]) {_TIME} ([0-9]{{4}})")
# §8.8.3: entity-tag = [ weak ] DQUOTE *etagc DQUOTE; a comma is an etagc, so a list is
# split on the tags, not on its commas.
_ENTITY_TAG: Final = re.compile(r'(?:W/)?"[^"]*"')


class Decision(Enum):
    SEND = auto()
    NOT_MODIFIED = auto()
    PRECONDITION_FAILED = auto()


def _etags(header: str) -> list[str]:
    """The entity-tags of an If-Match or If-None-Match value, ["*"] for "*", and none
    for a value that is neither, so that junk never matches (§13.1.1-2)."""
    if header.strip() == "*":
        return ["*"]
    tags = _ENTITY_TAG.findall(header)
    rest = _ENTITY_TAG.sub("", header)
    return tags if not rest.strip(", \t") else []


def _weak_match(tag: str, etag: str) -> bool:
    return tag.removeprefix("W/") == etag.removeprefix("W/")


def _strong_match(tag: str, etag: str) -> bool:
    # §8.8.3.2: strong comparison; a weak tag never matches, not even itself.
    return tag == etag and not tag.startswith("W/")


def _http_date(header: str | None) -> datetime | None:
    """An HTTP-date (§5.6.7), or None for anything else, a list of dates included,
    which §13.1.3-4 ignore."""
    if not header:
        return None
    header = header.strip()
    if match := _IMF_FIXDATE.fullmatch(header):
        day, month, year, hour, minute, second = match.groups()
    elif match := _RFC_850.fullmatch(header):
        day, month, short_year, hour, minute, second = match.groups()
        year = str(_two_digit_year(int(short_year)))
    elif match := _ASCTIME.fullmatch(header):
        month, day, hour, minute, second, year = match.groups()
    else:
        return None
    if month.title() not in _MONTHS:
        return None
    try:
        return datetime(
            int(year), _MONTHS[month.title()], int(day), int(hour), int(minute), int(second),
            tzinfo=UTC,
        )  # fmt: skip
    except ValueError:  # 31 Feb, hour 25, year 0000, a leap second
        return None


def _two_digit_year(year: int) -> int:
    # §5.6.7: a two-digit year more than 50 years in the future is in the past century.
    this_year = datetime.now(UTC).year
    candidate = this_year - this_year % 100 + year
    return candidate - 100 if candidate > this_year + 50 else candidate


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
