"""The records the gateway keeps, spelled as the Twilio schema spells them."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class Status(StrEnum):
    PROCESSING = "processing"
    COMPLETED = "completed"
    DELETED = "deleted"
    FAILED = "failed"


class MediaType(StrEnum):
    AUDIO = "audio"
    VIDEO = "video"
    DATA = "data"


class Container(StrEnum):
    MKA = "mka"
    MKV = "mkv"


class Codec(StrEnum):
    VP8 = "VP8"
    H264 = "H264"
    OPUS = "OPUS"
    PCMU = "PCMU"


@dataclass(frozen=True, slots=True)
class Account:
    sid: str
    friendly_name: str
    auth_token: str
    date_created: datetime


@dataclass(frozen=True, slots=True)
class ApiKey:
    sid: str
    account_sid: str
    # SHA-256 of the secret: keys authenticate, they never sign anything.
    secret_hash: str
    date_created: datetime


@dataclass(frozen=True, slots=True)
class Recording:
    sid: str
    account_sid: str
    status: Status
    date_created: datetime
    date_updated: datetime
    source_sid: str
    type: MediaType
    container_format: Container
    codec: Codec
    duration: int | None
    size: int
    track_name: str
    offset: int
    room_sid: str | None = None
    participant_sid: str | None = None
    status_callback: str | None = None
    status_callback_method: str | None = None
    media_key: str | None = None
    media_etag: str | None = None
    # Why a recording failed, for operators; not part of Twilio's representation.
    failure_reason: str | None = None
    # Set only on recordings imported from Twilio that had one (External S3 storage).
    media_external_location: str | None = None

    @property
    def grouping_sids(self) -> dict[str, str]:
        groups = {"room_sid": self.room_sid, "participant_sid": self.participant_sid}
        return {name: sid for name, sid in groups.items() if sid is not None}

    @property
    def has_media(self) -> bool:
        return self.status is Status.COMPLETED and self.size > 0 and self.media_key is not None

    def replace(self, **changes: object) -> Recording:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


class Delivery(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    ABANDONED = "abandoned"  # out of attempts, or not allowed to be sent


@dataclass(frozen=True, slots=True)
class Callback:
    """One status callback to send: written with the state change it reports."""

    id: str
    recording_sid: str
    account_sid: str
    event: str
    url: str
    method: str
    params: dict[str, str]
    created: datetime
    due: datetime  # not to be tried before
    attempts: int = 0
    state: Delivery = Delivery.PENDING
    delivered: datetime | None = None
    last_error: str | None = None

    def replace(self, **changes: object) -> Callback:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class RecordingFilter:
    """The list filters of `GET /v1/Recordings`; None means 'any'."""

    status: Status | None = None
    source_sid: str | None = None
    grouping_sids: tuple[str, ...] = ()
    created_after: datetime | None = None
    created_before: datetime | None = None
    media_type: MediaType | None = None
    room_sid: str | None = None


@dataclass(frozen=True, slots=True)
class Cursor:
    """A position in the newest-first order: the edge row of the page it came from.

    `forward` walks towards older recordings (next page), otherwise towards
    newer ones (previous page).
    """

    date_created: datetime
    sid: str
    forward: bool = True


@dataclass(frozen=True, slots=True)
class RecordingPage:
    recordings: list[Recording]
    next_cursor: Cursor | None
    previous_cursor: Cursor | None
