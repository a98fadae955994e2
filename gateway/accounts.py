"""Accounts and API keys: who may call the API, and as which account."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Final

from gateway import sids
from gateway.errors import NotFound, Unauthenticated
from gateway.models import Account, ApiKey
from gateway.store import MetadataStore

# Bounds the memory of the credential cache; past it the cache starts over.
REMEMBERED: Final = 10_000


def _bytes(secret: str) -> bytes:
    # Whatever a client sent, lone surrogates included, compares rather than raises.
    return secret.encode("utf-8", "surrogatepass")


def _hash(secret: str) -> str:
    return hashlib.sha256(_bytes(secret)).hexdigest()


async def create_account(store: MetadataStore, friendly_name: str) -> Account:
    # Kept in the clear, as Twilio does: status callbacks are signed with it.
    account = Account(sids.mint("AC"), friendly_name, secrets.token_hex(16), datetime.now(UTC))
    await store.add_account(account)
    return account


async def create_api_key(store: MetadataStore, account_sid: str) -> tuple[ApiKey, str]:
    """A new key and its secret, which is shown once and kept only as a hash."""
    if await store.get_account(account_sid) is None:
        raise NotFound(f"No account {account_sid}")
    secret = secrets.token_urlsafe(32)
    key = ApiKey(sids.mint("SK"), account_sid, _hash(secret), datetime.now(UTC))
    await store.add_api_key(key)
    return key, secret


async def authenticate(store: MetadataStore, username: str, password: str) -> str:
    """The account SID that `username:password` (AccountSid:AuthToken or KeySid:Secret) acts as."""
    if sids.is_sid(username, "AC"):
        account = await store.get_account(username)
        if account is not None and hmac.compare_digest(
            _bytes(account.auth_token), _bytes(password)
        ):
            return account.sid
    elif sids.is_sid(username, "SK"):
        key = await store.get_api_key(username)
        if key is not None and hmac.compare_digest(key.secret_hash, _hash(password)):
            return key.account_sid
    raise Unauthenticated("Authentication Error - invalid username or password")


class Authenticator:
    """`authenticate` for the credentials of a request, as `parse` reads them into a
    username and password, with each credential that passed remembered for `ttl`
    seconds: an API call costs one lookup (of what it asks for), not two, and a client
    that sends the same credentials again costs a hash of them, not their parsing.
    Refusals are not remembered, and only a hash of each credential is kept."""

    def __init__(
        self,
        store: MetadataStore,
        ttl: float,
        parse: Callable[[str | None], tuple[str, str]],
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store, self._ttl, self._parse, self._now = store, ttl, parse, now
        self._passed: dict[bytes, tuple[str, float]] = {}

    async def __call__(self, credentials: str | None) -> str:
        remembered = hashlib.sha256(_bytes(credentials or "")).digest()
        known = self._passed.get(remembered)
        if known is not None and known[1] > self._now():
            return known[0]
        username, password = self._parse(credentials)  # refuses what is not a credential
        account_sid = await authenticate(self._store, username, password)
        if self._ttl > 0:
            if len(self._passed) >= REMEMBERED:
                self._passed.clear()
            self._passed[remembered] = (account_sid, self._now() + self._ttl)
        return account_sid
