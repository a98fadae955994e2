"""What a status callback says, and the signature that proves who said it."""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
from datetime import datetime
from typing import Final
from urllib.parse import urlencode, urlsplit

from gateway import sids
from gateway.models import Callback, Recording, Status

EVENTS: Final = {
    Status.PROCESSING: "recording-started",
    Status.COMPLETED: "recording-completed",
    Status.FAILED: "recording-failed",
    Status.DELETED: "recording-deleted",
}


def announce(recording: Recording, now: datetime) -> Callback | None:
    """The callback reporting `recording`'s current status, if it asked for callbacks."""
    if recording.status_callback is None:
        return None
    event = EVENTS[recording.status]
    params = {
        "AccountSid": recording.account_sid,
        "RecordingSid": recording.sid,
        "StatusCallbackEvent": event,
        "SourceSid": recording.source_sid,
        "RoomSid": recording.room_sid,
        "ParticipantSid": recording.participant_sid,
        "TrackName": recording.track_name,
        "Codec": recording.codec.value,
        "Container": recording.container_format.value,
        "Duration": None if recording.duration is None else str(recording.duration),
        "Size": str(recording.size),
        "MediaUri": f"/v1/Recordings/{recording.sid}/Media",
        "Timestamp": now.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
    }
    return Callback(
        id=sids.mint("EV"),
        recording_sid=recording.sid,
        account_sid=recording.account_sid,
        event=event,
        url=recording.status_callback,
        method=recording.status_callback_method or "POST",
        params={name: value for name, value in params.items() if value is not None},
        created=now,
        due=now,
    )


def request_url(callback: Callback) -> str:
    """Where the callback goes: for GET, with its parameters in the query string."""
    if callback.method == "POST":
        return callback.url
    joiner = "&" if urlsplit(callback.url).query else "?"
    return callback.url + joiner + urlencode(sorted(callback.params.items()))


def signature(auth_token: str, callback: Callback) -> str:
    """X-Twilio-Signature: base64 HMAC-SHA1 over the URL, then each POST parameter's name
    and value in name order (https://www.twilio.com/docs/usage/security)."""
    signed = request_url(callback)
    if callback.method == "POST":
        signed += "".join(name + value for name, value in sorted(callback.params.items()))
    digest = hmac.new(auth_token.encode(), signed.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def is_public(address: str) -> bool:
    """Not loopback, private, link-local or otherwise internal: safe to call unasked."""
    return ipaddress.ip_address(address.split("%")[0]).is_global
