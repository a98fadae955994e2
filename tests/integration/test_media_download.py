"""The signed link: redirect, byte-exact downloads, ranges, conditionals, expiry, revocation."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from email.utils import format_datetime
from pathlib import Path
from urllib.parse import quote

import pytest
import uvloop
from aiohttp import ClientSession, web
from yarl import URL

from gateway.api.keys import SENDFILE, STORE
from gateway.app import create_app
from gateway.config import Settings
from gateway.demo import write_tone
from gateway.ingestion import Ingestion
from gateway.media.send import WHOLE_BODY
from gateway.models import Account, Codec, Recording, Status
from gateway.sids import mint
from tests.conftest import SIGNING_KEY, Clock, backend_settings
from tests.in_process import GatewayTestServer
from tests.media import write_noisy_video
from tests.schema import validate_error

CONTENT_TYPES = {
    Codec.OPUS: "audio/webm",
    Codec.VP8: "video/webm",
    Codec.H264: "video/x-matroska",
    Codec.PCMU: "audio/x-matroska",
}


# Both ways local bytes can leave; S3 bytes always go through the pump, so there the
# sendfile axis would repeat the same test. S3 runs on SQLite too, so that the S3
# download suite needs no PostgreSQL.
WAYS = [
    ("sqlite+local", "sendfile"),
    ("sqlite+local", "pump"),
    ("sqlite+s3", "pump"),
    ("postgres+s3", "pump"),
]
# An answer that sends no media (304, 412, 416, 403, 404) is decided before the bytes
# are chosen a way to leave: one local way covers it.
ANSWER_WAYS = [way for way in WAYS if way != ("sqlite+local", "pump")]
no_media_sent = pytest.mark.no_media_sent


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "way" in metafunc.fixturenames:
        answers_only = metafunc.definition.get_closest_marker("no_media_sent")
        metafunc.parametrize("way", ANSWER_WAYS if answers_only else WAYS, ids="-".join)


@pytest.fixture
def backends(
    way: tuple[str, str], request: pytest.FixtureRequest, tmp_path: Path
) -> dict[str, str]:
    return backend_settings(way[0], request, tmp_path)


@pytest.fixture
def app(way: tuple[str, str], settings: Settings, clock: Clock) -> web.Application:
    sendfile = way[1] == "sendfile"
    return create_app(settings, settings.signing_keys, now=clock, sendfile=sendfile)


async def media_link(
    http: ClientSession, base_url: str, recording: Recording, **params: str
) -> str:
    url = f"{base_url}/v1/Recordings/{recording.sid}/Media"
    async with http.get(url, params=params, allow_redirects=False) as response:
        assert response.status == 302, await response.text()
        body = await response.json()
        assert response.headers["Location"] == body["redirect_to"]
    assert set(body) == {"redirect_to"}
    return body["redirect_to"]  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
def long_tone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Over 64 KiB, so that a whole download and a large range take the byte pump or
    # sendfile, while a small range is read whole.
    path = tmp_path_factory.mktemp("long") / "tone.mka"
    write_tone(path, 12.0)
    assert path.stat().st_size > 2 * WHOLE_BODY
    return path


@pytest.fixture
async def audio(ingestion: Ingestion, account: Account, long_tone: Path) -> Recording:
    return await ingestion.ingest(long_tone, account.sid)


@pytest.fixture
async def audio_bytes(long_tone: Path) -> bytes:
    return await asyncio.to_thread(long_tone.read_bytes)


@pytest.fixture
async def link(http: ClientSession, base_url: str, audio: Recording) -> str:
    return await media_link(http, base_url, audio)


async def test_every_codec_downloads_byte_exact_with_its_content_type(
    http: ClientSession,
    anonymous: ClientSession,
    base_url: str,
    ingested: dict[Codec, Recording],
    media_files: dict[Codec, Path],
) -> None:
    assert set(ingested) == set(CONTENT_TYPES), "PCMU media needs ffmpeg"
    for codec, recording in ingested.items():
        link = await media_link(http, base_url, recording)
        async with anonymous.get(link) as response:
            assert response.status == 200
            assert response.headers["Content-Type"] == CONTENT_TYPES[codec]
            assert response.headers["Accept-Ranges"] == "bytes"
            body = await response.read()
        assert body == await asyncio.to_thread(media_files[codec].read_bytes)


async def test_link_is_under_this_service_and_default_disposition_is_attachment(
    anonymous: ClientSession, base_url: str, audio: Recording, link: str
) -> None:
    assert link.startswith(f"{base_url}/media/")
    async with anonymous.get(link) as response:
        assert response.headers["Content-Disposition"] == f'attachment; filename="{audio.sid}.mka"'
        # The link's seconds left: 600 as issued, 599 if a second began since.
        assert response.headers["Cache-Control"] in ("private, max-age=600", "private, max-age=599")


async def test_following_the_redirect_with_credentials_yields_the_media(
    http: ClientSession, base_url: str, audio: Recording, audio_bytes: bytes
) -> None:
    async with http.get(f"{base_url}/v1/Recordings/{audio.sid}/Media") as response:
        assert response.status == 200
        assert await response.read() == audio_bytes


@pytest.mark.parametrize(
    ("requested", "sent"),
    [
        ("inline", "inline"),
        ('attachment; filename="talk.mka"', 'attachment; filename="talk.mka"'),
        ("INLINE; filename=talk.mka", 'inline; filename="talk.mka"'),
        (
            'attachment; filename="réunion.mka"',
            "attachment; filename=\"r_union.mka\"; filename*=UTF-8''" + quote("réunion.mka"),
        ),
    ],
)
async def test_content_disposition_is_sent_as_signed(
    http: ClientSession,
    anonymous: ClientSession,
    base_url: str,
    audio: Recording,
    requested: str,
    sent: str,
) -> None:
    link = await media_link(http, base_url, audio, ContentDisposition=requested)
    async with anonymous.get(link) as response:
        assert response.headers["Content-Disposition"] == sent


@pytest.mark.parametrize(
    ("range_header", "start", "end"),
    [
        ("bytes=0-99", 0, 100),  # start
        ("bytes=0-", 0, None),  # Chrome's first request: must be 206 to allow seeking
        ("bytes=1000-1999", 1000, 2000),  # middle
        ("bytes=-500", -500, None),  # end (suffix)
        ("bytes=5000-", 5000, None),  # to the end
        ("bytes=100-999999999", 100, None),  # last-pos past the end is clamped
    ],
)
async def test_single_range_is_206_with_exact_bytes(
    anonymous: ClientSession,
    link: str,
    audio_bytes: bytes,
    range_header: str,
    start: int,
    end: int | None,
) -> None:
    size = len(audio_bytes)
    expected = audio_bytes[start:end]
    first = start % size
    async with anonymous.get(link, headers={"Range": range_header}) as response:
        assert response.status == 206
        assert (
            response.headers["Content-Range"] == f"bytes {first}-{first + len(expected) - 1}/{size}"
        )
        assert response.headers["Content-Length"] == str(len(expected))
        assert await response.read() == expected


async def test_suffix_range_longer_than_file_returns_whole_body(
    anonymous: ClientSession, link: str, audio_bytes: bytes
) -> None:
    async with anonymous.get(link, headers={"Range": "bytes=-99999999"}) as response:
        assert response.status == 206
        assert (
            response.headers["Content-Range"]
            == f"bytes 0-{len(audio_bytes) - 1}/{len(audio_bytes)}"
        )
        assert await response.read() == audio_bytes


@no_media_sent
@pytest.mark.parametrize("range_header", ["bytes=99999999-", "bytes=-0"])
async def test_unsatisfiable_range_is_416_with_the_size(
    anonymous: ClientSession, link: str, audio_bytes: bytes, range_header: str
) -> None:
    async with anonymous.get(link, headers={"Range": range_header}) as response:
        assert response.status == 416
        assert response.headers["Content-Range"] == f"bytes */{len(audio_bytes)}"
        validate_error(await response.json(), 416)


@pytest.mark.parametrize(
    "range_header", ["bytes=0-1,5-6", "bytes=abc", "items=0-5", "bytes=9-3", "bytes="]
)
async def test_multi_or_malformed_range_is_ignored_with_whole_body(
    anonymous: ClientSession, link: str, audio_bytes: bytes, range_header: str
) -> None:
    async with anonymous.get(link, headers={"Range": range_header}) as response:
        assert response.status == 200
        assert "Content-Range" not in response.headers
        assert await response.read() == audio_bytes


async def test_head_sends_headers_without_body(
    anonymous: ClientSession, link: str, audio_bytes: bytes
) -> None:
    async with anonymous.head(link) as response:
        assert response.status == 200
        assert response.headers["Content-Length"] == str(len(audio_bytes))
        assert response.headers["Content-Type"] == "audio/webm"
        assert await response.read() == b""
    async with anonymous.head(link, headers={"Range": "bytes=10-19"}) as response:
        assert response.status == 206
        assert response.headers["Content-Range"] == f"bytes 10-19/{len(audio_bytes)}"


async def test_if_none_match_with_current_etag_is_304(anonymous: ClientSession, link: str) -> None:
    async with anonymous.get(link) as response:
        etag = response.headers["ETag"]
        last_modified = response.headers["Last-Modified"]
    assert etag[0] == etag[-1] == '"'
    async with anonymous.get(link, headers={"If-None-Match": etag}) as response:
        assert response.status == 304
        assert response.headers["ETag"] == etag
        assert await response.read() == b""
    async with anonymous.get(link, headers={"If-None-Match": 'W/"other", ' + etag}) as response:
        assert response.status == 304
    async with anonymous.get(link, headers={"If-Modified-Since": last_modified}) as response:
        assert response.status == 304
    async with anonymous.get(link, headers={"If-None-Match": '"stale"'}) as response:
        assert response.status == 200


async def test_if_modified_since_before_last_modified_sends_the_body(
    anonymous: ClientSession, link: str, audio: Recording, audio_bytes: bytes
) -> None:
    earlier = format_datetime(audio.date_updated.replace(year=2020), usegmt=True)
    async with anonymous.get(link, headers={"If-Modified-Since": earlier}) as response:
        assert response.status == 200
        assert await response.read() == audio_bytes


async def test_if_range_with_current_etag_honours_the_range(
    anonymous: ClientSession, link: str, audio_bytes: bytes
) -> None:
    async with anonymous.head(link) as response:
        etag = response.headers["ETag"]
    headers = {"Range": "bytes=0-9", "If-Range": etag}
    async with anonymous.get(link, headers=headers) as response:
        assert response.status == 206
        assert await response.read() == audio_bytes[:10]
    headers["If-Range"] = '"changed"'
    async with anonymous.get(link, headers=headers) as response:
        assert response.status == 200
        assert await response.read() == audio_bytes


@no_media_sent
async def test_if_match_with_another_etag_is_412(anonymous: ClientSession, link: str) -> None:
    async with anonymous.get(link, headers={"If-Match": '"other"'}) as response:
        assert response.status == 412


async def test_expired_link_is_403_saying_it_expired(
    http: ClientSession, anonymous: ClientSession, base_url: str, audio: Recording, clock: Clock
) -> None:
    link = await media_link(http, base_url, audio, Ttl="60")
    clock.advance(50)
    async with anonymous.get(link) as response:
        assert response.status == 200
        # No cache may keep the bytes past the link's last seconds (real ones pass too).
        directive, max_age = response.headers["Cache-Control"].split("=")
        assert directive == "private, max-age"
        assert 0 < int(max_age) <= 10
    clock.advance(20)
    async with anonymous.get(link) as response:
        assert response.status == 403
        body = await response.json()
    validate_error(body, 403)
    assert "expired" in body["message"]


@pytest.mark.slow
async def test_link_with_ttl_1_expires_in_real_time(
    http: ClientSession, anonymous: ClientSession, base_url: str, audio: Recording
) -> None:
    link = await media_link(http, base_url, audio, Ttl="1")
    async with anonymous.get(link) as response:
        assert response.status == 200
    await asyncio.sleep(4.1)  # Ttl + the allowed clock skew + a margin
    async with anonymous.get(link) as response:
        assert response.status == 403
        assert "expired" in (await response.json())["message"]


@no_media_sent
@pytest.mark.parametrize("position", [0, 10, -10, -2, -1])
async def test_tampered_link_is_403(anonymous: ClientSession, link: str, position: int) -> None:
    prefix, token = link.rsplit("/", 1)
    flipped = "A" if token[position] != "A" else "B"
    tampered = token[:position] + flipped + (token[position + 1 :] if position != -1 else "")
    async with anonymous.get(f"{prefix}/{tampered}") as response:
        assert response.status == 403
        body = await response.json()
    validate_error(body, 403)
    assert "expired" not in body["message"]


async def test_link_signed_with_retired_key_is_403_and_rotation_keeps_old_links(
    settings: Settings,
    clock: Clock,
    http: ClientSession,
    anonymous: ClientSession,
    base_url: str,
    audio: Recording,
    link: str,
    audio_bytes: bytes,
) -> None:
    token = link.rsplit("/", 1)[1]
    rotated = create_app(settings, ("a-brand-new-signing-key-0123456789", SIGNING_KEY), now=clock)
    retired = create_app(settings, ("a-brand-new-signing-key-0123456789",), now=clock)
    async with GatewayTestServer(rotated, host="127.0.0.1") as server:
        async with anonymous.get(server.make_url(f"/media/{token}")) as response:
            assert response.status == 200
            assert await response.read() == audio_bytes
    async with GatewayTestServer(retired, host="127.0.0.1") as server:
        async with anonymous.get(server.make_url(f"/media/{token}")) as response:
            assert response.status == 403


@no_media_sent
async def test_deleting_the_recording_revokes_an_outstanding_link(
    http: ClientSession, anonymous: ClientSession, base_url: str, audio: Recording, link: str
) -> None:
    async with http.delete(f"{base_url}/v1/Recordings/{audio.sid}") as response:
        assert response.status == 204
    async with anonymous.get(link) as response:
        assert response.status == 404
        validate_error(await response.json(), 404)
    async with http.get(
        f"{base_url}/v1/Recordings/{audio.sid}/Media", allow_redirects=False
    ) as response:
        assert response.status == 404


async def test_client_leaving_mid_download_is_not_an_error_and_service_goes_on(
    caplog: pytest.LogCaptureFixture,
    anonymous: ClientSession,
    ingestion: Ingestion,
    account: Account,
    http: ClientSession,
    base_url: str,
    tmp_path: Path,
) -> None:
    path = tmp_path / "large.mkv"
    await asyncio.to_thread(write_noisy_video, path, 8.0)
    large = await ingestion.ingest(path, account.sid)
    link = await media_link(http, base_url, large)
    url = URL(link)
    reader, writer = await asyncio.open_connection(url.host, url.port)
    writer.write(f"GET {url.raw_path} HTTP/1.1\r\nHost: {url.host}\r\n\r\n".encode())
    assert (await reader.readline()).startswith(b"HTTP/1.1 200")
    await reader.read(1000)
    writer.transport.abort()  # gone, with megabytes still to send
    await asyncio.sleep(0.2)
    async with anonymous.get(link, headers={"Range": "bytes=-10"}) as response:
        assert response.status == 206
        assert len(await response.read()) == 10
    assert [
        (r.getMessage(), r.exc_text) for r in caplog.records if r.levelno >= logging.ERROR
    ] == []


@no_media_sent
@pytest.mark.parametrize(
    "state", [{"status": Status.PROCESSING}, {"status": Status.FAILED}, {"size": 0}]
)
async def test_media_of_a_recording_without_downloadable_media_is_404(
    app: web.Application,
    http: ClientSession,
    base_url: str,
    audio: Recording,
    state: dict[str, object],
) -> None:
    unfinished = audio.replace(sid=mint("RT"), **state)
    await app[STORE].add_recording(unfinished)
    url = f"{base_url}/v1/Recordings/{unfinished.sid}/Media"
    async with http.get(url, allow_redirects=False) as response:
        assert response.status == 404
        validate_error(await response.json(), 404)
    async with http.get(f"{base_url}/v1/Recordings/{unfinished.sid}") as response:
        assert response.status == 200


@pytest.mark.parametrize("new_loop", [asyncio.new_event_loop, uvloop.new_event_loop])
def test_sendfile_is_chosen_once_by_what_the_storage_is(
    settings: Settings, new_loop: Callable[[], asyncio.AbstractEventLoop]
) -> None:
    """Local files go out through os.sendfile on either loop (uvloop, which `gateway
    serve` runs, has no loop.sendfile); S3 objects are no local files, so they go
    straight to the pump, decided once rather than asked on each download."""

    async def chosen() -> bool:
        runner = web.AppRunner(create_app(settings, settings.signing_keys))
        await runner.setup()
        try:
            return runner.app[SENDFILE]
        finally:
            await runner.cleanup()

    loop = new_loop()
    try:
        files = not settings.storage_url.startswith("s3://")
        assert loop.run_until_complete(chosen()) is files
    finally:
        loop.close()
