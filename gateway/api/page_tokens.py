"""PageToken: a position in the keyset paging, opaque to clients."""

from __future__ import annotations

import base64
import binascii
import re
from typing import Final

from gateway.errors import InvalidParameter
from gateway.instants import from_micros, to_micros
from gateway.models import Cursor

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
