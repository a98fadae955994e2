"""The exact JSON of Twilio's `video.v1.recording` and `video.v1.room.room_recording`."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any, Final
from urllib.parse import urlencode

from gateway.api.page_tokens import encode_cursor
from gateway.api.query import ListQuery
from gateway.models import Cursor, Recording, RecordingPage

# A JSON string as json.dumps writes it (ASCII, escaped), in C.
_json_string: Final[Callable[[str], str]] = json.encoder.encode_basestring_ascii


def redirect_json(location: str) -> str:
    """`{"redirect_to": location}` as json.dumps writes it, without building an encoder
    for a one-key object on every issuance."""
    return f'{{"redirect_to": {_json_string(location)}}}'


def twilio_date(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def recording_url(base: str, recording: Recording, room_sid: str | None) -> str:
    """The resource's own URL: under /v1/Rooms/… when it was reached through its room."""
    if room_sid is None:
        return f"{base}/v1/Recordings/{recording.sid}"
    return f"{base}/v1/Rooms/{room_sid}/Recordings/{recording.sid}"


def recording_json(base: str, recording: Recording, room_sid: str | None = None) -> dict[str, Any]:
    url = recording_url(base, recording, room_sid)
    body: dict[str, Any] = {
        "account_sid": recording.account_sid,
        "status": recording.status.value,
        "date_created": twilio_date(recording.date_created),
        "sid": recording.sid,
        "source_sid": recording.source_sid,
        "size": recording.size,
        "url": url,
        "type": recording.type.value,
        "duration": recording.duration,
        "container_format": recording.container_format.value,
        "codec": recording.codec.value,
        "grouping_sids": recording.grouping_sids,
        "track_name": recording.track_name,
        "offset": recording.offset,
        "media_external_location": recording.media_external_location,
        "links": {"media": f"{url}/Media"},
    }
    if room_sid is None:
        body["status_callback"] = recording.status_callback
        body["status_callback_method"] = recording.status_callback_method
    else:
        body["room_sid"] = recording.room_sid
    return body


def list_json(
    base: str, path: str, query: ListQuery, page: RecordingPage, room_sid: str | None = None
) -> dict[str, Any]:
    def page_url(number: int, cursor: Cursor | None, token: str | None = None) -> str:
        params = [*query.filter_params, ("PageSize", str(query.page_size)), ("Page", str(number))]
        if cursor is not None:
            token = encode_cursor(cursor)
        if token is not None:
            params.append(("PageToken", token))
        return f"{base}{path}?{urlencode(params)}"

    previous = page.previous_cursor
    return {
        "recordings": [recording_json(base, r, room_sid) for r in page.recordings],
        "meta": {
            "page": query.page,
            "page_size": query.page_size,
            "first_page_url": page_url(0, None),
            "previous_page_url": previous and page_url(max(query.page - 1, 0), previous),
            "url": page_url(query.page, None, query.page_token),
            "next_page_url": page.next_cursor and page_url(query.page + 1, page.next_cursor),
            "key": "recordings",
        },
    }
