"""The two Authorization schemes the API takes, parsed without trusting a byte of them.

aiohttp hands header values over as UTF-8 with surrogate escapes, so a value may hold
any character at all, lone surrogates included; each parser answers a value or
Unauthenticated, nothing else.
"""

from __future__ import annotations

import binascii
from base64 import b64decode
from typing import Final

from gateway.errors import Unauthenticated

BEARER_CHALLENGE: Final = "Bearer"


def parse_basic(header: str | None) -> tuple[str, str]:
    """(user, password) from `Basic base64(user:password)` (RFC 7617)."""
    if not header:
        raise Unauthenticated("Authentication Error - No credentials provided")
    scheme, _, encoded = header.partition(" ")
    refused = Unauthenticated("Authentication Error - invalid username or password")
    if scheme.lower() != "basic" or not encoded.isascii():
        raise refused
    try:
        decoded = b64decode(encoded.strip(), validate=True)
    except binascii.Error:
        raise refused from None
    user, colon, password = decoded.partition(b":")
    if not colon:
        raise refused
    # RFC 7617 §2.1 leaves the charset to the server; SIDs and tokens are ASCII, and
    # Latin-1 maps every byte to one character, so any password compares, none raises.
    return user.decode("latin-1"), password.decode("latin-1")


def parse_bearer(header: str | None) -> bytes:
    """The token of `Bearer <token>` (RFC 6750 §2.1), as the bytes the client sent."""
    scheme, _, token = (header or "").partition(" ")
    token = token.strip(" ")
    if scheme.lower() != "bearer" or not token:
        raise Unauthenticated("A valid bearer token is required", challenge=BEARER_CHALLENGE)
    try:
        return token.encode("utf-8", "surrogateescape")  # undoes aiohttp's decoding
    except UnicodeEncodeError:
        return token.encode("utf-8", "surrogatepass")  # a surrogate no byte decodes to
