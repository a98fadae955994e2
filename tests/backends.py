"""The production backends the suites also run on: PostgreSQL and an S3 server.

S3 is moto's real HTTP server on a loopback port. PostgreSQL is the one named by
GATEWAY_TEST_POSTGRES_DSN; without it those tests are skipped locally and fail in CI.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Iterator

import asyncpg
import boto3
import pytest
from moto.server import ThreadedMotoServer

from gateway.config import Settings

POSTGRES_HOWTO = (
    "set GATEWAY_TEST_POSTGRES_DSN=postgresql://postgres@127.0.0.1:5432/test "
    "(any database the user may create schemas in) to run the PostgreSQL tests"
)


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    # Credentials for the local server only; set before any client is made.
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3_bucket(s3_endpoint: str) -> str:
    name = f"recordings-{secrets.token_hex(6)}"
    s3_client(s3_endpoint).create_bucket(Bucket=name)
    return name


def s3_client(endpoint: str):  # type: ignore[no-untyped-def]
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")


@pytest.fixture(scope="session")
def postgres_dsn() -> str:
    dsn = os.environ.get("GATEWAY_TEST_POSTGRES_DSN")
    if not dsn:
        if os.environ.get("CI") == "true":
            pytest.fail("GATEWAY_TEST_POSTGRES_DSN is not set; .ci/run sets it")
        pytest.skip(POSTGRES_HOWTO)
    return dsn


@pytest.fixture
async def postgres_url(postgres_dsn: str) -> AsyncIterator[str]:
    """A fresh, empty schema for one test, as a URL the gateway can be given."""
    schema = f"test_{secrets.token_hex(6)}"
    connection = await asyncpg.connect(postgres_dsn)
    try:
        await connection.execute(f"CREATE SCHEMA {schema}")
    finally:
        await connection.close()
    separator = "&" if "?" in postgres_dsn else "?"
    # asyncpg passes unknown query parameters on as server settings.
    yield f"{postgres_dsn}{separator}search_path={schema}"
    connection = await asyncpg.connect(postgres_dsn)
    try:
        await connection.execute(f"DROP SCHEMA {schema} CASCADE")
    finally:
        await connection.close()


def stored(settings: Settings) -> list[str]:
    """Everything the media storage holds, finished or not: files, objects, upload parts."""
    if not settings.storage_url.startswith("s3://"):
        return [str(p) for p in settings.storage_path.rglob("*") if p.is_file()]
    client = s3_client(settings.s3_endpoint_url or "")
    bucket = settings.storage_url.removeprefix("s3://").split("/")[0]
    objects = client.list_objects_v2(Bucket=bucket).get("Contents", [])
    uploads = client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    return [o["Key"] for o in objects] + [f"unfinished upload of {u['Key']}" for u in uploads]
