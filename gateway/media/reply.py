"""What to answer a download: decided from headers and metadata alone, before any I/O."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import format_datetime

from gateway.media.conditional import Decision, evaluate, range_applies
from gateway.media.headers import CONTENT_TYPES, cache_control
from gateway.media.ranges import parse_range
from gateway.models import Recording
from gateway.signing import MediaGrant


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    headers: dict[str, str]
    # The [start, end) slice of the object to send; None for a reply without a body.
    body: tuple[int, int] | None


def decide(
    request_headers: Mapping[str, str], recording: Recording, grant: MediaGrant, now: float
) -> Reply:
    size = recording.size
    etag = recording.media_etag or f'"{recording.sid}"'
    last_modified = recording.date_updated.replace(microsecond=0)
    headers = {
        "Accept-Ranges": "bytes",
        "ETag": etag,
        "Last-Modified": format_datetime(last_modified, usegmt=True),
        "Cache-Control": cache_control(grant.expires_at - int(now)),
    }
    decision = evaluate(request_headers, etag, last_modified)
    if decision is Decision.NOT_MODIFIED:
        return Reply(304, headers, None)
    if decision is Decision.PRECONDITION_FAILED:
        return Reply(412, headers, None)
    headers["Content-Type"] = CONTENT_TYPES[recording.codec]
    headers["Content-Disposition"] = grant.content_disposition
    wanted = request_headers.get("Range")
    if wanted is None or not range_applies(request_headers, etag, last_modified):
        return Reply(200, headers, (0, size))
    selected = parse_range(wanted, size)  # raises RangeNotSatisfiable: 416
    if selected is None:
        return Reply(200, headers, (0, size))
    start, end = selected
    headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
    return Reply(206, headers, selected)
