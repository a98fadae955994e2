"""Media links: an itsdangerous-signed grant that needs no other credential."""

from __future__ import annotations

import functools
import hmac
import json
import os
import secrets
import stat
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from itsdangerous import BadSignature, Serializer, Signer, URLSafeSerializer
from itsdangerous.encoding import base64_decode, base64_encode, want_bytes

from gateway.config import Settings
from gateway.errors import ConfigError, LinkExpired, LinkRefused

# Instances behind one load balancer never have perfectly agreeing clocks.
CLOCK_SKEW_SECONDS: Final = 2
VERIFIED_LINKS: Final = 4096


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
        self._serializer = _Serializer(
            list(reversed(keys)), salt="gateway.media-link", signer=_Signer
        )
        self._signer = self._serializer.make_signer()
        self._now = now
        # A player asks for range after range through one link: its signature is checked
        # once. Only links that verified are remembered, and their expiry is checked on
        # every use; a signer with other keys is another signer, with its own memory.
        self._verified = functools.lru_cache(maxsize=VERIFIED_LINKS)(self._grant)

    def issue(self, grant: MediaGrant) -> str:
        # itsdangerous's URL-safe format, written out: the compact JSON of the payload
        # list (as _CompactJSON writes it), base64url, ".", the signature. The library's
        # layers of calls cost more than the HMAC itself; `verify` reads it with them.
        payload = (
            f"[{_json_string(grant.recording_sid)},{_json_string(grant.account_sid)},"
            f"{_json_string(grant.content_disposition)},{int(grant.expires_at)}]"
        )
        body = base64_encode(payload.encode())
        return (body + b"." + self._signer.get_signature(body)).decode()

    def verify(self, token: str) -> MediaGrant:
        grant = self._verified(token)
        # The expiry is in the payload, not itsdangerous's timestamp: each link has its
        # own Ttl, and a verifier whose clock runs slightly behind must not refuse it.
        if self._now() > grant.expires_at + CLOCK_SKEW_SECONDS:
            raise LinkExpired(grant.expires_at)
        return grant

    def _grant(self, token: str) -> MediaGrant:
        try:
            payload = self._serializer.loads(token)
            grant = MediaGrant(*payload)
        except (BadSignature, TypeError):
            raise LinkRefused("This media link is not valid") from None
        # base64's padding bits let a few spellings of one token verify; accept only the
        # one we issued, so a token names exactly one link (for logs, caches, revocation).
        if not all(_canonical(part) for part in token.split(".") if part):
            raise LinkRefused("This media link is not valid")
        return grant


# A JSON string as an encoder with ensure_ascii=False writes it, in C.
_json_string: Final[Callable[[str], str]] = json.encoder.encode_basestring


class _CompactJSON:
    """itsdangerous's compact JSON, its encoder made once: json.dumps with separators
    builds a new encoder on every call."""

    loads = staticmethod(json.loads)
    dumps = staticmethod(json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode)


class _Serializer(URLSafeSerializer):
    """itsdangerous's URL-safe format, its payloads never compressed: zlib's set-up
    cost more than all the rest of issuing a link, to save a few bytes of it. Links
    issued compressed still verify, as the format marks them."""

    default_serializer = _CompactJSON

    def dump_payload(self, obj: Any) -> bytes:
        return base64_encode(Serializer.dump_payload(self, obj))


class _Signer(Signer):
    """itsdangerous's signer, its key derived and its HMAC keyed once rather than for
    every link it signs."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._keyed = hmac.new(self.derive_key(), digestmod=self.digest_method)

    def get_signature(self, value: str | bytes) -> bytes:
        mac = self._keyed.copy()
        mac.update(want_bytes(value))
        return base64_encode(mac.digest())


def _canonical(part: str) -> bool:
    return base64_encode(base64_decode(part)).decode() == part


def signing_keys(settings: Settings) -> tuple[str, ...]:
    """The configured keys, or on SQLite (one instance) one kept beside the database.

    Instances sharing a database must all verify each other's links, so there a
    missing key stops start-up instead of each instance inventing its own.
    """
    if settings.signing_keys:
        return settings.signing_keys
    if not settings.uses_sqlite:
        raise ConfigError("GATEWAY_SIGNING_KEYS must be set when the database is shared")
    key_file = settings.sqlite_path.parent / "signing-key"
    if not key_file.exists():
        key_file.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, stat.S_IRUSR | stat.S_IWUSR)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_urlsafe(32) + "\n")
    return (key_file.read_text().strip(),)
