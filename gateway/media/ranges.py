"""Single byte ranges, RFC 9110 §14."""

from __future__ import annotations

import re
from typing import Final

from gateway.errors import RangeNotSatisfiable

# [0-9], not \d: RFC 5234's DIGIT is ASCII only.
_SINGLE_RANGE: Final = re.compile(
    r"bytes[ \t]*=[ \t]*([0-9]*)[ \t]*-[ \t]*([0-9]*)[ \t]*", re.IGNORECASE
)


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The (start, end-exclusive) slice a Range header asks of `size` bytes.

    None means "send the whole representation": no header, a malformed one, or several
    ranges, all of which RFC 9110 §14.2 lets a server ignore. Raises RangeNotSatisfiable
    when the one range asked for lies outside the representation (§14.1.1).
    """
    if header is None:
        return None
    match = _SINGLE_RANGE.fullmatch(header)
    if match is None:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:
        # suffix-range "-n": the last n bytes (§14.1.1); "-0" selects nothing.
        suffix = int(last)
        if suffix == 0:
            raise RangeNotSatisfiable(size)
        return max(size - suffix, 0), size
    start = int(first)
    if last and int(last) < start:
        return None  # "last-pos < first-pos" is invalid, so the header is ignored
    if start >= size:
        raise RangeNotSatisfiable(size)
    end = size if not last else min(int(last) + 1, size)
    return start, end
