"""Media links: an itsdangerous-signed grant that needs no other credential."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

from itsdangerous import BadSignature, URLSafeSerializer
from itsdangerous.encoding import base64_decode, base64_encode

from gateway.errors import LinkExpired, LinkRefused

# Instances behind one load balancer never have perfectly agreeing clocks.
CLOCK_SKEW_SECONDS: Final = 2


@dataclass(frozen=True, slots=True)
class MediaGrant:
    recording_sid: str
    account_sid: str
    content_disposition: str
    expires_at: int


class MediaLinkSigner:
    """`issue` turns a grant into a URL-safe token; `verify` turns it back or refuses."""

    def __init__(self, keys: Sequence[str], now: Callable[[], float] = time.time) -> None:
        if not keys:
            raise ValueError("at least one signing key is needed")
        # itsdangerous signs with the *last* key of the list; ours signs with the first.
        self._serializer = URLSafeSerializer(list(reversed(keys)), salt="gateway.media-link")
        self._now = now

    def issue(self, grant: MediaGrant) -> str:
        payload = [
            grant.recording_sid,
            grant.account_sid,
            grant.content_disposition,
            grant.expires_at,
        ]
        return self._serializer.dumps(payload)

    def verify(self, token: str) -> MediaGrant:
        try:
            payload = self._serializer.loads(token)
            grant = MediaGrant(*payload)
        except (BadSignature, TypeError):
            raise LinkRefused("This media link is not valid") from None
        # base64's padding bits let a few spellings of one token verify; accept only the
        # one we issued, so a token names exactly one link (for logs, caches, revocation).
        if not all(_canonical(part) for part in token.split(".") if part):
            raise LinkRefused("This media link is not valid")
        # The expiry is in the payload, not itsdangerous's timestamp: each link has its
        # own Ttl, and a verifier whose clock runs slightly behind must not refuse it.
        if self._now() > grant.expires_at + CLOCK_SKEW_SECONDS:
            raise LinkExpired(grant.expires_at)
        return grant


def _canonical(part: str) -> bool:
    return base64_encode(base64_decode(part)).decode() == part
