"""Media links: issued for a recording's media, redeemed by whoever follows them."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from gateway.errors import LinkExpired, LinkRefused, NotFound
from gateway.media.headers import CONTENT_TYPES, content_disposition
from gateway.metrics import EXPIRED, REFUSED, REVOKED, SERVED, Metrics
from gateway.recordings import Recordings
from gateway.signing import MediaGrant, MediaLinkSigner
from gateway.store import MetadataStore


@dataclass(frozen=True, slots=True)
class MediaLinkRequest:
    ttl: int
    # As the caller asked, not yet checked; None for the default attachment.
    content_disposition: str | None = None


@dataclass(frozen=True, slots=True)
class StoredMedia:
    """What a download needs to answer: the stored object and how the link said to
    present it."""

    recording_sid: str
    account_sid: str
    key: str
    size: int
    etag: str
    last_modified: datetime
    content_type: str
    content_disposition: str
    expires_at: int  # the link's, Unix time


@dataclass(slots=True)
class MediaLinks:
    recordings: Recordings
    signer: MediaLinkSigner
    now: Callable[[], float] = field(default=time.time)
    # Hand out the storage's own presigned URLs, which this service cannot revoke.
    presign: bool = False
    metrics: Metrics = field(default_factory=Metrics.off)

    async def issue(
        self,
        account_sid: str,
        sid: str,
        room_sid: str | None,
        request: MediaLinkRequest,
        base_url: str,
    ) -> str:
        """The URL `redirect_to` names: this service's signed link, or a presigned one."""
        recording = await self.recordings.get(account_sid, sid, room_sid)
        disposition = content_disposition(
            request.content_disposition, f"{recording.sid}.{recording.container_format}"
        )
        if not recording.has_media or recording.media_key is None:
            raise NotFound(f"Recording {sid} has no media to download ({recording.status})")
        if self.presign:
            content_type = CONTENT_TYPES[recording.codec]
            url = await self.recordings.storage.presign(
                recording.media_key, request.ttl, content_type, disposition
            )
            if url is not None:
                self.metrics.link_issued("presigned")
                return url
        expires_at = int(self.now()) + request.ttl
        grant = MediaGrant(recording.sid, recording.account_sid, disposition, expires_at)
        self.metrics.link_issued("signed")
        return f"{base_url}/media/{self.signer.issue(grant)}"

    async def redeem(self, token: str) -> StoredMedia:
        """The media behind a link: one lookup by key, and none if it is revoked."""
        try:
            grant = self.signer.verify(token)
        except LinkRefused as refused:
            self.metrics.link_redeemed(EXPIRED if isinstance(refused, LinkExpired) else REFUSED)
            raise
        recording = await self._store.get_recording(grant.recording_sid)
        if recording is None or recording.account_sid != grant.account_sid:
            self.metrics.link_redeemed(REVOKED)
            raise NotFound("The recording behind this link does not exist")
        if not recording.has_media or recording.media_key is None:
            self.metrics.link_redeemed(REVOKED)
            raise NotFound(f"Recording {recording.sid} is {recording.status}; its media is gone")
        self.metrics.link_redeemed(SERVED)
        return StoredMedia(
            recording_sid=recording.sid,
            account_sid=recording.account_sid,
            key=recording.media_key,
            size=recording.size,
            etag=recording.media_etag or f'"{recording.sid}"',
            last_modified=recording.date_updated.replace(microsecond=0),
            content_type=CONTENT_TYPES[recording.codec],
            content_disposition=grant.content_disposition,
            expires_at=grant.expires_at,
        )

    @property
    def _store(self) -> MetadataStore:
        return self.recordings.store
