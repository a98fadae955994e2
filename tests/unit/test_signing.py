"""`MediaLinkSigner`: signed, expiring media links that survive key rotation."""

from __future__ import annotations

import re
import string

import pytest
from hypothesis import given
from hypothesis import strategies as st
from itsdangerous import URLSafeSerializer

from gateway.errors import LinkExpired, LinkRefused
from gateway.signing import CLOCK_SKEW_SECONDS, MediaGrant, MediaLinkSigner

OLD_KEY = "old-signing-key-0123456789abcdef"
NEW_KEY = "new-signing-key-fedcba9876543210"
OTHER_KEY = "someone-elses-key-0123456789abcdef"

ISSUED_AT = 1_700_000_000.0
EXPIRES_AT = 1_700_000_600

GRANT = MediaGrant(
    recording_sid="RT0123456789abcdef0123456789abcdef",
    account_sid="AC0123456789abcdef0123456789abcdef",
    content_disposition='attachment; filename="RT0123456789abcdef0123456789abcdef.mka"',
    expires_at=EXPIRES_AT,
)

URL_SAFE = re.compile(r"[A-Za-z0-9_.\-]+")
BASE64URL = string.ascii_uppercase + string.ascii_lowercase + string.digits + "-_"


class Clock:
    """A settable clock to inject as `now`."""

    def __init__(self, now: float = ISSUED_AT) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def signer(*keys: str, now: float = ISSUED_AT) -> MediaLinkSigner:
    return MediaLinkSigner(list(keys), now=Clock(now))


def tamper(token: str, position: int) -> str:
    """`token` with the top bit of one base64url digit flipped (a "." becomes "A")."""
    char = token[position]
    index = BASE64URL.find(char)
    replacement = "A" if index < 0 else BASE64URL[(index + 32) % 64]
    return token[:position] + replacement + token[position + 1 :]


def refused(verifier: MediaLinkSigner, token: str) -> LinkRefused:
    """The refusal `verify` raises, which must not be an expiry."""
    with pytest.raises(LinkRefused) as excinfo:
        verifier.verify(token)
    assert not isinstance(excinfo.value, LinkExpired)
    return excinfo.value


@pytest.mark.parametrize(
    "grant",
    [
        GRANT,
        MediaGrant(GRANT.recording_sid, GRANT.account_sid, "inline", EXPIRES_AT),
        MediaGrant(
            GRANT.recording_sid,
            GRANT.account_sid,
            "attachment; filename=\"R_union.mka\"; filename*=UTF-8''R%C3%A9union.mka",
            EXPIRES_AT,
        ),
    ],
)
def test_link_verifies_to_the_grant_it_was_issued_for(grant: MediaGrant) -> None:
    links = signer(OLD_KEY)
    token = links.issue(grant)
    assert links.verify(token) == grant


@given(st.text(), st.text(), st.text(), st.integers(min_value=0, max_value=2**53))
def test_link_is_exactly_what_itsdangerous_signs(
    recording_sid: str, account_sid: str, disposition: str, expires_at: int
) -> None:
    # The token is written out by hand for speed: itsdangerous itself must read it, and
    # where it would not compress the payload, must write the very same bytes.
    token = signer(OLD_KEY).issue(MediaGrant(recording_sid, account_sid, disposition, expires_at))
    reference = URLSafeSerializer(
        OLD_KEY,
        salt="gateway.media-link",
        serializer_kwargs={"ensure_ascii": False, "separators": (",", ":")},
    )
    payload = [recording_sid, account_sid, disposition, expires_at]
    assert reference.loads(token) == payload
    theirs = reference.dumps(payload)
    if not theirs.startswith("."):  # "." marks a zlib-compressed payload
        assert token == theirs


def test_link_token_is_url_safe() -> None:
    token = signer(OLD_KEY).issue(GRANT)
    assert URL_SAFE.fullmatch(token)


def test_link_with_any_character_replaced_is_refused() -> None:
    links = signer(OLD_KEY)
    token = links.issue(GRANT)
    for position in range(len(token)):
        refused(links, tamper(token, position))


def test_link_with_any_single_character_substituted_is_refused() -> None:
    links = signer(OLD_KEY)
    token = links.issue(GRANT)
    accepted = []
    for position, char in enumerate(token):
        for replacement in BASE64URL + ".":
            if replacement != char:
                forged = token[:position] + replacement + token[position + 1 :]
                try:
                    links.verify(forged)
                except LinkExpired:
                    accepted.append(forged)
                except LinkRefused:
                    continue
                else:
                    accepted.append(forged)
    assert accepted == []


def test_link_truncated_extended_or_spliced_is_refused() -> None:
    links = signer(OLD_KEY)
    token = links.issue(GRANT)
    other = links.issue(MediaGrant(GRANT.recording_sid, GRANT.account_sid, "inline", EXPIRES_AT))
    payload, _, signature = token.rpartition(".")
    other_payload, _, other_signature = other.rpartition(".")
    for forged in [
        "",
        ".",
        token[:-1],
        token + "A",
        token[1:],
        "A" + token,
        payload,
        signature,
        f"{payload}.",
        f".{signature}",
        f"{payload}.{other_signature}",
        f"{other_payload}.{signature}",
        f"{token}.{signature}",
    ]:
        refused(links, forged)


def test_link_signed_with_a_key_we_do_not_hold_is_refused() -> None:
    token = signer(OTHER_KEY).issue(GRANT)
    refused(signer(OLD_KEY, NEW_KEY), token)


def test_link_expired_and_tampered_is_refused_not_reported_expired() -> None:
    links = signer(OLD_KEY, now=EXPIRES_AT + 3600)
    token = signer(OLD_KEY).issue(GRANT)
    refused(links, tamper(token, len(token) // 2))


def test_link_signed_with_retired_key_verifies_while_that_key_is_listed() -> None:
    token = signer(OLD_KEY).issue(GRANT)
    assert signer(NEW_KEY, OLD_KEY).verify(token) == GRANT


def test_link_is_signed_with_the_first_key() -> None:
    token = signer(NEW_KEY, OLD_KEY).issue(GRANT)
    assert signer(NEW_KEY).verify(token) == GRANT
    refused(signer(OLD_KEY), token)


def test_link_signed_with_a_key_dropped_from_the_list_is_refused() -> None:
    token = signer(OLD_KEY).issue(GRANT)
    refused(signer(NEW_KEY), token)


@pytest.mark.parametrize(
    "now",
    [
        ISSUED_AT,
        # A verifier whose clock runs behind the issuer's must not refuse a fresh link.
        ISSUED_AT - 3600,
        EXPIRES_AT - 1,
        EXPIRES_AT,
        EXPIRES_AT + CLOCK_SKEW_SECONDS - 0.5,
        EXPIRES_AT + CLOCK_SKEW_SECONDS,
    ],
)
def test_link_verifies_until_its_expiry_plus_the_allowed_skew(now: float) -> None:
    token = signer(OLD_KEY).issue(GRANT)
    assert signer(OLD_KEY, now=now).verify(token) == GRANT


@pytest.mark.parametrize(
    "now",
    [
        EXPIRES_AT + CLOCK_SKEW_SECONDS + 0.001,
        EXPIRES_AT + CLOCK_SKEW_SECONDS + 1,
        EXPIRES_AT + 86_400,
    ],
)
def test_link_past_its_expiry_plus_the_allowed_skew_is_expired(now: float) -> None:
    token = signer(OLD_KEY).issue(GRANT)
    with pytest.raises(LinkExpired) as excinfo:
        signer(OLD_KEY, now=now).verify(token)
    assert excinfo.value.expired_at == EXPIRES_AT
    assert "expired" in str(excinfo.value)
    assert str(EXPIRES_AT) in str(excinfo.value)


def test_link_expiry_follows_the_injected_clock() -> None:
    clock = Clock(ISSUED_AT)
    links = MediaLinkSigner([OLD_KEY], now=clock)
    token = links.issue(GRANT)
    assert links.verify(token) == GRANT
    clock.now = EXPIRES_AT + CLOCK_SKEW_SECONDS + 1
    with pytest.raises(LinkExpired):
        links.verify(token)


def test_signer_needs_at_least_one_key() -> None:
    with pytest.raises(ValueError, match="key"):
        MediaLinkSigner([])
