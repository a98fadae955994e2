"""What to answer a download: decided from headers and metadata alone, before any I/O."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from gateway.errors import RangeNotSatisfiable
from gateway.media.conditional import Decision, evaluate, range_applies
from gateway.media.headers import SECURITY_HEADERS, cache_control, http_date
from gateway.media.ranges import parse_range
from gateway.media_links import StoredMedia


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    headers: dict[str, str]
    # The [start, end) slice of the object to send; None for a reply without a body.
    body: tuple[int, int] | None


def decide(request_headers: Mapping[str, str], media: StoredMedia, now: float) -> Reply:
    size, etag, last_modified = media.size, media.etag, media.last_modified
    headers = {
        # Sent before the handler returns, so the reply carries them itself.
        **SECURITY_HEADERS,
        "Accept-Ranges": "bytes",
        "ETag": etag,
        "Last-Modified": http_date(last_modified),
        "Cache-Control": cache_control(media.expires_at - int(now)),
    }
    decision = evaluate(request_headers, etag, last_modified)
    if decision is Decision.NOT_MODIFIED:
        return Reply(304, headers, None)
    if decision is Decision.PRECONDITION_FAILED:
        return Reply(412, headers, None)
    wanted = request_headers.get("Range")
    selected = None
    if wanted is not None and range_applies(request_headers, etag, last_modified):
        try:
            selected = parse_range(wanted, size)
        except RangeNotSatisfiable:
            # A Twilio error body, with the validators every other answer here carries.
            raise RangeNotSatisfiable(size, validators=headers) from None
    headers["Content-Type"] = media.content_type
    headers["Content-Disposition"] = media.content_disposition
    if selected is None:
        return Reply(200, headers, (0, size))
    start, end = selected
    headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
    return Reply(206, headers, selected)
