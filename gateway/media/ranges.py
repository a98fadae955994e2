"""Single byte ranges, RFC 9110 §14."""

from __future__ import annotations

import re
from typing import Final

from gateway.errors import RangeNotSatisfiable

# [0-9], not \d: RFC 5234's DIGIT is ASCII only.
_SINGLE_RANGE: Final = re.compile(
    r"bytes[ \t]*=[ \t]*([0-9]*)[ \t]*-[ \t]*([0-9]*)[ \t]*",
    # ASCII case only: IGNORECASE alone takes U+017F LATIN SMALL LETTER LONG S for an s.
    re.IGNORECASE | re.ASCII,
)


# Past any size a file can have; longer numbers are read as this rather than converted,
# as int() refuses more than 4,300 digits and the answer is the same for any of them.
_BEYOND_ANY_SIZE: Final = 10**18


def _position(digits: str) -> int:
    significant = digits.lstrip("0")
    return int(significant or "0") if len(significant) <= 18 else _BEYOND_ANY_SIZE


def _less(a: str, b: str) -> bool:
    """a < b for decimal digit strings of any length, without converting them."""
    a, b = a.lstrip("0"), b.lstrip("0")
    return (len(a), a) < (len(b), b)


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
        suffix = _position(last)
        if suffix == 0:
            raise RangeNotSatisfiable(size)
        return max(size - suffix, 0), size
    start = _position(first)
    if last and _less(last, first):
        return None  # "last-pos < first-pos" is invalid, so the header is ignored
    if start >= size:
        raise RangeNotSatisfiable(size)
    end = size if not last else min(_position(last) + 1, size)
    return start, end
