"""What only S3 storage does: multipart parts, outages answered with 503, connections
released when clients leave, and presigned links."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from aiohttp import ClientSession, web
from aiohttp.test_utils import TestServer
from yarl import URL

from gateway.api.keys import INGESTION
from gateway.app import create_app
from gateway.config import Settings
from gateway.ingestion import Declaration
from gateway.models import Account, Codec, Container, MediaType, Recording, Status
from gateway.sids import mint
from gateway.storage.s3 import PART_SIZE
from tests.backends import s3_client
from tests.conftest import ADMIN_TOKEN, SIGNING_KEY
from tests.in_process import GatewayTestServer
from tests.integration.test_recorder_api import in_chunks
from tests.media import write_noisy_video
from tests.schema import validate_error


@pytest.fixture
def settings(tmp_path: Path, s3_bucket: str, s3_endpoint: str) -> Settings:
    return Settings.from_env(
        {
            "GATEWAY_DATABASE_URL": f"sqlite:///{tmp_path}/gateway.db",
            "GATEWAY_STORAGE_URL": f"s3://{s3_bucket}/media",
            "GATEWAY_S3_ENDPOINT_URL": s3_endpoint,
            # Small, so a leaked connection would soon block everyone.
            "GATEWAY_S3_MAX_CONNECTIONS": "2",
            "GATEWAY_SIGNING_KEYS": SIGNING_KEY,
        }
    )


@pytest.fixture(scope="module")
def large_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("large") / "large.mkv"
    write_noisy_video(path, 24.0)
    assert path.stat().st_size > PART_SIZE
    return path


@pytest.fixture
async def large(app: web.Application, account: Account, large_video: Path) -> Recording:
    return await app[INGESTION].ingest(large_video, account.sid)


@pytest.fixture
async def link(http: ClientSession, base_url: str, large: Recording) -> str:
    url = f"{base_url}/v1/Recordings/{large.sid}/Media"
    async with http.get(url, allow_redirects=False) as response:
        assert response.status == 302
        return (await response.json())["redirect_to"]  # type: ignore[no-any-return]


@asynccontextmanager
async def another_instance(settings: Settings, **changes: object) -> AsyncIterator[TestServer]:
    """A second gateway on the same metadata and keys, with its own S3 settings."""
    other = dataclasses.replace(settings, **changes)  # type: ignore[arg-type]
    async with GatewayTestServer(create_app(other, other.signing_keys), host="127.0.0.1") as server:
        yield server


@asynccontextmanager
async def fake_s3(handler: web.Handler) -> AsyncIterator[str]:
    """An S3 endpoint that misbehaves the way `handler` does, on a loopback port."""
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    async with TestServer(app, host="127.0.0.1") as server:
        yield str(server.make_url("")).rstrip("/")


def on_other_server(link: str, server: TestServer) -> URL:
    return server.make_url(URL(link).raw_path)


async def test_large_ingest_is_a_multipart_upload_of_8_mib_parts(
    settings: Settings, large: Recording, large_video: Path
) -> None:
    bucket = settings.storage_url.removeprefix("s3://").split("/")[0]
    client, key = s3_client(settings.s3_endpoint_url or ""), f"media/{large.media_key}"
    first_part = client.head_object(Bucket=bucket, Key=key, PartNumber=1)
    assert first_part["ContentLength"] == PART_SIZE
    size = (await asyncio.to_thread(large_video.stat)).st_size
    # A multipart object's ETag ends in "-<number of parts>".
    assert client.head_object(Bucket=bucket, Key=key)["ETag"].endswith(f'-{-(-size // PART_SIZE)}"')


async def test_range_at_the_end_of_a_large_object_is_exact(
    anonymous: ClientSession, link: str, large_video: Path
) -> None:
    data = await asyncio.to_thread(large_video.read_bytes)
    async with anonymous.get(link, headers={"Range": "bytes=-65536"}) as response:
        assert response.status == 206
        assert await response.read() == data[-65536:]
    async with anonymous.get(
        link, headers={"Range": f"bytes={PART_SIZE - 10}-{PART_SIZE + 9}"}
    ) as response:
        assert await response.read() == data[PART_SIZE - 10 : PART_SIZE + 10]


async def test_head_asks_s3_for_headers_only(
    caplog: pytest.LogCaptureFixture, anonymous: ClientSession, link: str, large: Recording
) -> None:
    caplog.set_level(logging.INFO, logger="werkzeug")  # moto's server logs each request
    caplog.clear()
    async with anonymous.head(link) as response:
        assert response.status == 200
    key = f"/media/{large.media_key}"
    asked = [
        r.getMessage() for r in caplog.records if r.name == "werkzeug" and key in r.getMessage()
    ]
    assert any('"HEAD ' in line for line in asked)
    assert not any('"GET ' in line for line in asked)


async def test_clients_leaving_mid_download_release_their_s3_connections(
    anonymous: ClientSession, link: str, large_video: Path
) -> None:
    url = URL(link)
    for _ in range(5):  # more than the pool's two connections
        reader, writer = await asyncio.open_connection(url.host, url.port)
        writer.write(f"GET {url.raw_path} HTTP/1.1\r\nHost: {url.host}\r\n\r\n".encode())
        assert (await reader.readline()).startswith(b"HTTP/1.1 200")
        await reader.read(10_000)
        writer.transport.abort()
        await asyncio.sleep(0.05)
    size = (await asyncio.to_thread(large_video.stat)).st_size
    async with asyncio.timeout(10), anonymous.get(link) as response:
        assert response.status == 200
        assert len(await response.read()) == size


async def test_unreachable_s3_is_503_with_retry_after_and_the_api_goes_on(
    settings: Settings, http: ClientSession, anonymous: ClientSession, link: str
) -> None:
    with_dead_s3 = {"s3_endpoint_url": "http://127.0.0.1:9", "s3_timeout": 0.5}
    async with another_instance(settings, **with_dead_s3) as server:
        for method in ("GET", "HEAD"):
            async with anonymous.request(method, on_other_server(link, server)) as response:
                assert response.status == 503
                assert int(response.headers["Retry-After"]) > 0
        async with anonymous.get(on_other_server(link, server)) as response:
            validate_error(await response.json(), 503)
        async with http.get(server.make_url("/v1/Recordings")) as response:
            assert response.status == 200


async def test_complete_while_s3_is_unreachable_is_503_and_can_be_retried(
    app: web.Application, settings: Settings, account: Account, large_video: Path
) -> None:
    ingestion = app[INGESTION]
    declared = Declaration(account.sid, MediaType.VIDEO, Codec.VP8, Container.MKV, mint("MT"))
    sid = (await ingestion.start(declared)).sid
    await ingestion.upload(sid, in_chunks(large_video))
    complete = f"/internal/v1/Recordings/{sid}/Complete"
    dead_s3 = {"s3_endpoint_url": "http://127.0.0.1:9", "s3_timeout": 0.5}
    async with (
        another_instance(settings, admin_token=ADMIN_TOKEN, **dead_s3) as server,
        ClientSession(headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as recorder,
        recorder.post(server.make_url(complete)) as response,
    ):
        assert response.status == 503
        validate_error(await response.json(), 503)
    assert (await ingestion.complete(sid)).status is Status.COMPLETED  # once S3 is back


async def test_s3_answering_500_is_503(
    settings: Settings, anonymous: ClientSession, link: str
) -> None:
    async def internal_error(request: web.Request) -> web.Response:
        body = "<Error><Code>InternalError</Code><Message>We broke</Message></Error>"
        return web.Response(status=500, text=body, content_type="application/xml")

    async with (
        fake_s3(internal_error) as endpoint,
        another_instance(settings, s3_endpoint_url=endpoint) as server,
        anonymous.get(on_other_server(link, server)) as response,
    ):
        assert response.status == 503
        validate_error(await response.json(), 503)


async def test_s3_too_slow_to_answer_is_503(
    settings: Settings, anonymous: ClientSession, link: str
) -> None:
    async def hangs(request: web.Request) -> web.Response:
        await asyncio.sleep(30)
        return web.Response()

    async with (
        fake_s3(hangs) as endpoint,
        another_instance(settings, s3_endpoint_url=endpoint, s3_timeout=0.3) as server,
        anonymous.get(on_other_server(link, server)) as response,
    ):
        assert response.status == 503


async def test_presign_mode_redirects_to_s3_with_the_same_ttl_type_and_disposition(
    settings: Settings, http: ClientSession, anonymous: ClientSession, large: Recording,
    large_video: Path,
) -> None:  # fmt: skip
    async with another_instance(settings, media_mode="presign") as server:
        url = server.make_url(f"/v1/Recordings/{large.sid}/Media")
        query = {"Ttl": "120", "ContentDisposition": 'inline; filename="talk.mkv"'}
        async with http.get(url, params=query, allow_redirects=False) as response:
            assert response.status == 302
            presigned = (await response.json())["redirect_to"]
    assert presigned.startswith(settings.s3_endpoint_url)
    signed = parse_qs(urlsplit(presigned).query)
    assert signed["X-Amz-Expires"] == ["120"]
    assert signed["response-content-type"] == ["video/webm"]
    assert signed["response-content-disposition"] == ['inline; filename="talk.mkv"']
    async with anonymous.get(presigned) as response:
        assert response.status == 200
        assert await response.read() == await asyncio.to_thread(large_video.read_bytes)
