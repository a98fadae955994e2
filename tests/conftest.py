"""Fixtures that start real things: the app on a loopback port, real media, real clients."""

from __future__ import annotations

import base64
import os
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from aiohttp import ClientSession, web
from aiohttp.test_utils import TestServer
from blockbuster import BlockBuster, blockbuster_ctx
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.rest import Client

from gateway.accounts import create_account
from gateway.api.keys import INGESTION, RECORDINGS, STORE
from gateway.app import create_app
from gateway.config import Settings
from gateway.ingestion import Ingestion
from gateway.models import Account, Codec, Recording
from gateway.recordings import Recordings
from gateway.sids import mint
from tests.backends import postgres_dsn, postgres_url, s3_bucket, s3_endpoint
from tests.in_process import GatewayTestServer
from tests.media import make_recordings

__all__ = ["postgres_dsn", "postgres_url", "s3_bucket", "s3_endpoint"]  # fixtures

SIGNING_KEY = "test-signing-key-0123456789abcdef"
ADMIN_TOKEN = "test-admin-token-0123456789abcdef"


def basic_auth(login: str, password: str) -> dict[str, str]:
    credentials = base64.b64encode(f"{login}:{password}".encode()).decode()
    return {"Authorization": f"Basic {credentials}"}


class Clock:
    """Real time plus whatever a test has skipped forward."""

    def __init__(self) -> None:
        self.skipped = 0.0

    def __call__(self) -> float:
        return time.time() + self.skipped

    def advance(self, seconds: float) -> None:
        self.skipped += seconds


@pytest.fixture(autouse=True)
def no_blocking_calls() -> Iterator[BlockBuster]:
    """Fail any test whose code blocks the event loop (file I/O, sleeps, sync sockets)."""
    with blockbuster_ctx(["gateway"]) as blockbuster:
        # Known, bounded costs of the libraries, not of our code: asyncpg looks for
        # ~/.pgpass once per new pooled connection; aiobotocore reads ~/.aws/config and
        # its service models once, when the client is made at start-up.
        for function in blockbuster.functions.values():
            function.can_block_in("asyncpg/connect_utils.py", "_parse_connect_dsn_and_args")
            function.can_block_in("aiobotocore/session.py", "_create_client")
            # Ours, on purpose: a primary-key read of SQLite, never waiting for a lock,
            # costs less on the loop than the hand-off to a thread and back.
            function.can_block_in("gateway/store/sqlite.py", "look_up")
            # Onto a non-blocking socket: it waits only for a page-cache miss, as nginx's
            # sendfile does, and the loop waits for room, not the call.
            function.can_block_in("gateway/media/send.py", "_sendfile")
        yield blockbuster


@pytest.fixture(scope="session")
def media_files(tmp_path_factory: pytest.TempPathFactory) -> dict[Codec, Path]:
    return make_recordings(tmp_path_factory.mktemp("media"))


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=["sqlite+local", "postgres+s3"])
def backends(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    """The GATEWAY_* settings of each backend combination the suites run on: the embedded
    default and production's."""
    return backend_settings(request.param, request, tmp_path)


def backend_settings(pair: str, request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    """The settings of a "database+storage" pair, "sqlite+s3" as well as the usual two."""
    database, storage = pair.split("+")
    if database == "sqlite":
        chosen = {"GATEWAY_DATABASE_URL": f"sqlite:///{tmp_path}/gateway.db"}
    else:
        chosen = {"GATEWAY_DATABASE_URL": request.getfixturevalue("postgres_url")}
    if storage == "local":
        return {**chosen, "GATEWAY_STORAGE_URL": f"file://{tmp_path}/media"}
    return {
        **chosen,
        "GATEWAY_STORAGE_URL": f"s3://{request.getfixturevalue('s3_bucket')}/media",
        "GATEWAY_S3_ENDPOINT_URL": request.getfixturevalue("s3_endpoint"),
    }


@pytest.fixture
def env(backends: dict[str, str]) -> dict[str, str]:
    """The environment a `gateway` command runs in, on the same backends."""
    return {
        **os.environ,
        **backends,
        "GATEWAY_PUBLIC_URL": "https://recordings.example.com",
        "GATEWAY_SIGNING_KEYS": SIGNING_KEY,
    }


@pytest.fixture
def settings(backends: dict[str, str]) -> Settings:
    return Settings.from_env(
        {**backends, "GATEWAY_SIGNING_KEYS": SIGNING_KEY, "GATEWAY_ADMIN_TOKEN": ADMIN_TOKEN}
    )


@pytest.fixture
def app(settings: Settings, clock: Clock) -> web.Application:
    return create_app(settings, settings.signing_keys, now=clock, sendfile=True)


@pytest.fixture
async def server(app: web.Application) -> AsyncIterator[TestServer]:
    async with GatewayTestServer(app, host="127.0.0.1") as test_server:
        yield test_server


@pytest.fixture
def base_url(server: TestServer) -> str:
    return str(server.make_url("")).rstrip("/")


@pytest.fixture
def started(app: web.Application, server: TestServer) -> web.Application:
    """The app once its start-up has run: backends open, use-cases in place."""
    return app


@pytest.fixture
def recordings(started: web.Application) -> Recordings:
    return started[RECORDINGS]


@pytest.fixture
def ingestion(started: web.Application) -> Ingestion:
    return started[INGESTION]


@pytest.fixture
async def account(started: web.Application) -> Account:
    return await create_account(started[STORE], "Tests")


@pytest.fixture
async def other_account(started: web.Application) -> Account:
    return await create_account(started[STORE], "Someone else")


@pytest.fixture
async def http(account: Account) -> AsyncIterator[ClientSession]:
    """A plain HTTP client authenticated as `account`."""
    async with ClientSession(headers=basic_auth(account.sid, account.auth_token)) as session:
        yield session


@pytest.fixture
async def anonymous() -> AsyncIterator[ClientSession]:
    async with ClientSession() as session:
        yield session


@pytest.fixture
async def twilio(account: Account, base_url: str) -> AsyncIterator[Client]:
    """The official helper library, unchanged but for its base URL."""
    http_client = AsyncTwilioHttpClient()
    client = Client(account.sid, account.auth_token, http_client=http_client)
    client.video.base_url = base_url
    yield client
    await http_client.close()


@pytest.fixture
async def ingested(
    ingestion: Ingestion, account: Account, media_files: dict[Codec, Path]
) -> dict[Codec, Recording]:
    """One completed recording per codec, all in one room."""
    room = mint("RM")
    return {
        codec: await ingestion.ingest(path, account.sid, room_sid=room, participant_sid=mint("PA"))
        for codec, path in media_files.items()
    }
