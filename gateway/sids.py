"""Twilio resource identifiers: two letters and 32 lowercase hex digits."""

from __future__ import annotations

import re
import secrets
from typing import Final

_ANY_SID: Final = re.compile(r"[A-Za-z]{2}[0-9a-fA-F]{32}")


def mint(prefix: str) -> str:
    return prefix + secrets.token_hex(16)


def is_sid(value: str, prefix: str | None = None) -> bool:
    """True when `value` is a SID, and of kind `prefix` when one is given."""
    if _ANY_SID.fullmatch(value) is None:
        return False
    return prefix is None or value[:2] == prefix
