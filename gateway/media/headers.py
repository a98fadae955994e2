"""Response headers that describe a recording's media."""

from __future__ import annotations

import functools
import unicodedata
from datetime import datetime
from email.utils import format_datetime
from typing import Final
from urllib.parse import quote

from gateway.errors import InvalidParameter
from gateway.models import Codec

CONTENT_TYPES: Final = {
    Codec.VP8: "video/webm",
    Codec.OPUS: "audio/webm",
    Codec.PCMU: "audio/x-matroska",
    Codec.H264: "video/x-matroska",
}

# Sent with every answer: a media link or an error body is never to be sniffed as HTML.
SECURITY_HEADERS: Final = {"X-Content-Type-Options": "nosniff"}

_DISPOSITION_TYPES: Final = ("attachment", "inline")


def _is_unsafe(char: str) -> bool:
    # Control characters (C0, DEL, C1) could split the header; format characters such as
    # U+202E RIGHT-TO-LEFT OVERRIDE make "evil\u202eakm.exe" read as another extension;
    # surrogates, private-use and unassigned ones and line separators have no business
    # in a filename. Quotes and backslashes would need escapes browsers disagree on.
    return unicodedata.category(char)[0] == "C" or char in '"\\\u2028\u2029'


def content_disposition(requested: str | None, default_filename: str) -> str:
    """The Content-Disposition value for a `ContentDisposition` parameter (RFC 6266).

    A non-ASCII filename is sent as `filename*=UTF-8''…` (RFC 8187) after an ASCII
    `filename` fallback, for user agents that do not know the extended form.
    """
    if requested is None:
        return _format("attachment", default_filename)
    kind, _, params = requested.partition(";")
    kind = kind.strip().lower()
    if kind not in _DISPOSITION_TYPES:
        raise InvalidParameter("ContentDisposition", "must start with attachment or inline")
    params = params.strip()
    if not params:
        return kind
    name, _, value = params.partition("=")
    filename = value.strip()
    if filename.startswith('"') and filename.endswith('"') and len(filename) >= 2:
        filename = filename[1:-1]  # a quoted filename may hold ";"; any inner quote is refused
    elif ";" in filename or filename.startswith('"'):
        filename = ""  # another parameter follows, or the quote is never closed
    if name.strip().lower() != "filename":
        raise InvalidParameter("ContentDisposition", 'only a filename="…" parameter may follow')
    if not filename or any(_is_unsafe(char) for char in filename):
        raise InvalidParameter(
            "ContentDisposition",
            "the filename must not be empty nor hold quotes, control or format characters",
        )
    return _format(kind, filename)


def _format(kind: str, filename: str) -> str:
    if filename.isascii():
        return f'{kind}; filename="{filename}"'
    fallback = filename.encode("ascii", "replace").decode("ascii").replace("?", "_")
    return f"{kind}; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


def cache_control(seconds_left: int) -> str:
    # `private`: a link is one user's grant, so shared caches must not keep the body;
    # nor may any cache keep it past the link's own expiry.
    return f"private, max-age={max(seconds_left, 0)}"


@functools.lru_cache(maxsize=1024)
def http_date(moment: datetime) -> str:
    """`Last-Modified`'s form (RFC 9110 IMF-fixdate), formatted once per recording."""
    return format_datetime(moment, usegmt=True)
