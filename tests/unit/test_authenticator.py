"""The credential cache: a credential that passed is not looked up again for `ttl`
seconds; one that failed always is."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.accounts import Authenticator, create_account, create_api_key
from gateway.api.credentials import parse_basic
from gateway.errors import Unauthenticated
from gateway.models import Account, ApiKey
from gateway.store import MetadataStore
from gateway.store.sqlite import open_sqlite
from tests.conftest import Clock


def basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


class CountingLookups:
    """The real store, counting the credential lookups made through it."""

    def __init__(self, store: MetadataStore) -> None:
        self.store, self.lookups = store, 0

    async def get_account(self, sid: str) -> Account | None:
        self.lookups += 1
        return await self.store.get_account(sid)

    async def get_api_key(self, sid: str) -> ApiKey | None:
        self.lookups += 1
        return await self.store.get_api_key(sid)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[MetadataStore]:
    opened = await open_sqlite(tmp_path / "gateway.db")
    yield opened
    await opened.aclose()


async def test_a_credential_that_passed_is_remembered_for_the_ttl(
    store: MetadataStore, clock: Clock
) -> None:
    account = await create_account(store, "Cached")
    key, secret = await create_api_key(store, account.sid)
    counted = CountingLookups(store)
    check = Authenticator(counted, ttl=5.0, parse=parse_basic, now=clock)  # type: ignore[arg-type]
    for _ in range(3):
        assert await check(basic(account.sid, account.auth_token)) == account.sid
        assert await check(basic(key.sid, secret)) == account.sid
    assert counted.lookups == 2
    clock.advance(5.1)
    assert await check(basic(account.sid, account.auth_token)) == account.sid
    assert counted.lookups == 3


async def test_a_wrong_secret_is_looked_up_and_refused_every_time(
    store: MetadataStore, clock: Clock
) -> None:
    account = await create_account(store, "Cached")
    counted = CountingLookups(store)
    check = Authenticator(counted, ttl=5.0, parse=parse_basic, now=clock)  # type: ignore[arg-type]
    assert await check(basic(account.sid, account.auth_token)) == account.sid
    for attempt in range(1, 4):
        with pytest.raises(Unauthenticated):
            await check(basic(account.sid, account.auth_token + "x"))
        assert counted.lookups == 1 + attempt


async def test_ttl_zero_looks_up_every_request(store: MetadataStore, clock: Clock) -> None:
    account = await create_account(store, "Uncached")
    counted = CountingLookups(store)
    check = Authenticator(counted, ttl=0.0, parse=parse_basic, now=clock)  # type: ignore[arg-type]
    for _ in range(3):
        assert await check(basic(account.sid, account.auth_token)) == account.sid
    assert counted.lookups == 3
