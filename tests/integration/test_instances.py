"""Two `gateway serve` processes on one PostgreSQL and one bucket act as one service."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from aiohttp import ClientSession
from yarl import URL

from gateway.models import Codec
from tests.conftest import SIGNING_KEY, basic_auth
from tests.processes import ok, serving


@pytest.fixture
def env(postgres_url: str, s3_bucket: str, s3_endpoint: str) -> dict[str, str]:
    return {
        **os.environ,
        "GATEWAY_DATABASE_URL": postgres_url,
        "GATEWAY_STORAGE_URL": f"s3://{s3_bucket}",
        "GATEWAY_S3_ENDPOINT_URL": s3_endpoint,
        "GATEWAY_SIGNING_KEYS": f"{SIGNING_KEY},an-older-key-still-verifying",
    }


@pytest.fixture
async def two_instances(env: dict[str, str]) -> AsyncIterator[tuple[str, str]]:
    """Started together on an empty database, so both race to migrate it."""
    with ExitStack() as stack:
        first, second = await asyncio.gather(
            asyncio.to_thread(stack.enter_context, serving(env)),
            asyncio.to_thread(stack.enter_context, serving(env)),
        )
        yield first.base_url, second.base_url


def moved(link: str, base: str) -> str:
    return str(URL(base).with_path(URL(link).path))


async def test_two_instances_share_links_pages_and_deletions(
    env: dict[str, str],
    two_instances: tuple[str, str],
    media_files: dict[Codec, Path],
) -> None:
    a, b = two_instances
    account = await asyncio.to_thread(ok, env, "accounts", "create")
    for path in (media_files[Codec.OPUS], media_files[Codec.VP8], media_files[Codec.H264]):
        await asyncio.to_thread(ok, env, "ingest", str(path), "--account", account["account_sid"])
    auth = basic_auth(account["account_sid"], account["auth_token"])
    async with ClientSession(headers=auth) as http, ClientSession() as anonymous:
        # Paging tokens from one instance work on the other.
        async with http.get(f"{a}/v1/Recordings", params={"PageSize": "2"}) as response:
            first_page = await response.json()
        async with http.get(moved(first_page["meta"]["next_page_url"], b)) as response:
            second_page = await response.json()
        sids = [r["sid"] for r in first_page["recordings"] + second_page["recordings"]]
        assert len(set(sids)) == 3

        # A link issued by one is served by the other.
        async with http.get(f"{a}/v1/Recordings/{sids[0]}/Media", allow_redirects=False) as r:
            link = (await r.json())["redirect_to"]
        assert link.startswith(a)
        async with anonymous.get(moved(link, b)) as response:
            assert response.status == 200
            served_by_b = await response.read()
        async with anonymous.get(link) as response:
            assert await response.read() == served_by_b

        # A delete through one makes the other refuse the old link at once.
        async with http.delete(f"{b}/v1/Recordings/{sids[0]}") as response:
            assert response.status == 204
        async with anonymous.get(link) as response:
            assert response.status == 404
