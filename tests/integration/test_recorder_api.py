"""The recorder's side: a recording handed in over /internal/v1/ while its room is live."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import ClientSession, web
from twilio.rest import Client

from gateway.api.keys import STORAGE, STORE
from gateway.app import create_app
from gateway.config import Settings
from gateway.models import Account, Codec
from gateway.sids import mint
from gateway.storage import MediaReader
from tests.backends import stored
from tests.conftest import ADMIN_TOKEN
from tests.in_process import GatewayTestServer
from tests.media import write_noisy_video
from tests.schema import validate, validate_error


@pytest.fixture
async def recorder() -> AsyncIterator[ClientSession]:
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    async with ClientSession(headers=headers) as session:
        yield session


def declaration(account: Account, **changes: object) -> dict[str, object]:
    return {
        "account_sid": account.sid,
        "type": "video",
        "codec": "VP8",
        "container_format": "mkv",
        "source_sid": mint("MT"),
        "grouping_sids": {"room_sid": mint("RM"), "participant_sid": mint("PA")},
        "track_name": "camera",
        "offset": 1200,
        "status_callback": "https://app.example.com/recording-events",
        **changes,
    }


async def in_chunks(path: Path, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    data = await asyncio.to_thread(path.read_bytes)
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def start(recorder: ClientSession, base_url: str, body: dict[str, object]) -> dict:  # type: ignore[type-arg]
    async with recorder.post(f"{base_url}/internal/v1/Recordings", json=body) as response:
        assert response.status == 201, await response.text()
        return await response.json()  # type: ignore[no-any-return]


async def test_recorder_session_end_to_end(
    recorder: ClientSession,
    http: ClientSession,
    anonymous: ClientSession,
    twilio: Client,
    base_url: str,
    account: Account,
    media_files: dict[Codec, Path],
) -> None:
    created = await start(recorder, base_url, declaration(account))
    validate(created, "/v1/Recordings/{Sid}")
    assert created["status"] == "processing"
    assert created["track_name"] == "camera"
    assert created["status_callback_method"] == "POST"
    sid = created["sid"]

    listed = await twilio.video.v1.recordings.list_async(status="processing")
    assert [r.sid for r in listed] == [sid]
    media = f"{base_url}/v1/Recordings/{sid}/Media"
    async with http.get(media, allow_redirects=False) as response:
        assert response.status == 404

    upload = f"{base_url}/internal/v1/Recordings/{sid}/Media"
    async with recorder.put(upload, data=in_chunks(media_files[Codec.VP8])) as response:
        assert response.status == 200
        assert (await response.json())["status"] == "processing"
    async with recorder.post(f"{base_url}/internal/v1/Recordings/{sid}/Complete") as response:
        assert response.status == 200
        completed = await response.json()
    validate(completed, "/v1/Recordings/{Sid}")
    expected = await asyncio.to_thread(media_files[Codec.VP8].read_bytes)
    assert (completed["status"], completed["size"], completed["duration"]) == (
        "completed", len(expected), 3
    )  # fmt: skip
    async with http.get(media, allow_redirects=False) as response:
        link = (await response.json())["redirect_to"]
    async with anonymous.get(link) as response:
        assert response.headers["Content-Type"] == "video/webm"
        assert await response.read() == expected


async def test_media_that_is_not_what_was_declared_fails_the_recording_with_a_reason(
    app: web.Application,
    recorder: ClientSession,
    base_url: str,
    account: Account,
    media_files: dict[Codec, Path],
) -> None:
    for body, reason in (
        (b"this is not a recording", "Matroska"),
        (await asyncio.to_thread(media_files[Codec.OPUS].read_bytes), "declared codec VP8"),
    ):
        sid = (await start(recorder, base_url, declaration(account)))["sid"]
        async with recorder.put(f"{base_url}/internal/v1/Recordings/{sid}/Media", data=body):
            pass
        async with recorder.post(f"{base_url}/internal/v1/Recordings/{sid}/Complete") as r:
            assert r.status == 200
            assert (await r.json())["status"] == "failed"
        failed = await app[STORE].get_recording(sid)
        assert failed is not None
        assert failed.failure_reason is not None
        assert reason in failed.failure_reason


async def test_complete_reads_only_the_start_of_a_long_recording(
    monkeypatch: pytest.MonkeyPatch,
    app: web.Application,
    recorder: ClientSession,
    base_url: str,
    account: Account,
    tmp_path: Path,
) -> None:
    path = tmp_path / "long.mkv"
    await asyncio.to_thread(write_noisy_video, path, 10.0, bitrate="16M")
    storage, read = app[STORAGE], []
    open_ = storage.open

    async def counting_open(key: str, start: int, end: int) -> MediaReader:
        read.append(end - start)
        return await open_(key, start, end)

    monkeypatch.setattr(storage, "open", counting_open)
    sid = (await start(recorder, base_url, declaration(account)))["sid"]
    async with recorder.put(f"{base_url}/internal/v1/Recordings/{sid}/Media", data=in_chunks(path)):
        pass
    async with recorder.post(f"{base_url}/internal/v1/Recordings/{sid}/Complete") as response:
        completed = await response.json()
    assert (completed["status"], completed["duration"]) == ("completed", 10)
    size = (await asyncio.to_thread(path.stat)).st_size
    assert size > 10 * 1024 * 1024
    assert 0 < sum(read) <= 2 * 1024 * 1024  # the headers, not the 10+ MiB of media


async def test_a_repeated_upload_replaces_the_unfinished_one(
    settings: Settings,
    recorder: ClientSession,
    anonymous: ClientSession,
    http: ClientSession,
    base_url: str,
    account: Account,
    media_files: dict[Codec, Path],
) -> None:
    sid = (await start(recorder, base_url, declaration(account)))["sid"]
    upload = f"{base_url}/internal/v1/Recordings/{sid}/Media"
    for attempt in (b"a first, broken attempt", in_chunks(media_files[Codec.VP8])):
        async with recorder.put(upload, data=attempt) as response:
            assert response.status == 200
    assert len(await asyncio.to_thread(stored, settings)) == 1  # the first is gone
    async with recorder.post(f"{base_url}/internal/v1/Recordings/{sid}/Complete") as response:
        assert (await response.json())["status"] == "completed"
    async with http.get(f"{base_url}/v1/Recordings/{sid}/Media", allow_redirects=False) as r:
        link = (await r.json())["redirect_to"]
    async with anonymous.get(link) as response:
        assert await response.read() == await asyncio.to_thread(media_files[Codec.VP8].read_bytes)


async def test_steps_out_of_order_are_409(
    recorder: ClientSession, base_url: str, account: Account, media_files: dict[Codec, Path]
) -> None:
    sid = (await start(recorder, base_url, declaration(account)))["sid"]
    internal = f"{base_url}/internal/v1/Recordings/{sid}"
    async with recorder.post(f"{internal}/Complete") as response:
        assert response.status == 409  # nothing uploaded yet
        validate_error(await response.json(), 409)
    async with recorder.post(f"{internal}/Fail", json={"reason": "recorder crashed"}) as r:
        assert (await r.json())["status"] == "failed"
    for method, step, body in (
        ("POST", "Complete", None), ("POST", "Fail", None), ("PUT", "Media", b"late"),
    ):  # fmt: skip
        async with recorder.request(method, f"{internal}/{step}", data=body) as response:
            assert response.status == 409


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"account_sid": "AC123"}, "account_sid"),
        ({"account_sid": None}, "account_sid"),
        ({"type": "hologram"}, "type"),
        ({"codec": "MP3"}, "codec"),
        ({"container_format": "mp4"}, "container_format"),
        ({"source_sid": 5}, "source_sid"),
        ({"grouping_sids": {"room_sid": "RM1"}}, "room_sid"),
        ({"grouping_sids": ["RM"]}, "grouping_sids"),
        ({"offset": -1}, "offset"),
        ({"offset": "soon"}, "offset"),
        ({"status_callback": "ftp://example.com/x"}, "status_callback"),
        ({"status_callback_method": "PUT"}, "status_callback_method"),
        ({"track_name": ["a"]}, "track_name"),
        # Once 500s or accepted: beyond int64, hostless or malformed callbacks, text no
        # database stores (json.dumps sends "\ud800" as the escape a client would).
        ({"offset": 2**63}, "offset"),
        ({"offset": 10**30}, "offset"),
        ({"status_callback": "http://[x/"}, "status_callback"),
        ({"status_callback": "http://"}, "status_callback"),
        ({"status_callback": "https://:443/"}, "status_callback"),
        ({"status_callback": "http://host:99999/"}, "status_callback"),
        ({"status_callback": "http://exa mple.com/"}, "status_callback"),
        ({"track_name": "\ud800"}, "track_name"),
        ({"track_name": "a\x00b"}, "track_name"),
        ({"track_name": "x" * 129}, "track_name"),
    ],
)
async def test_bad_declaration_is_400_naming_the_field(
    caplog: pytest.LogCaptureFixture,
    recorder: ClientSession,
    base_url: str,
    account: Account,
    changes: dict[str, object],
    named: str,
) -> None:
    body = declaration(account, **changes)
    async with recorder.post(f"{base_url}/internal/v1/Recordings", json=body) as response:
        assert response.status == 400
        error = await response.json()
    validate_error(error, 400)
    assert named in error["message"]
    assert not any(record.exc_info for record in caplog.records)  # the client's mistake


async def test_declaration_for_an_unknown_account_or_not_json_is_400(
    recorder: ClientSession, base_url: str, account: Account
) -> None:
    body = declaration(account, account_sid=mint("AC"))
    async with recorder.post(f"{base_url}/internal/v1/Recordings", json=body) as response:
        assert response.status == 400
    async with recorder.post(f"{base_url}/internal/v1/Recordings", data=b"{oops") as response:
        assert response.status == 400


async def test_recorder_api_needs_the_bearer_token(
    anonymous: ClientSession, base_url: str, account: Account
) -> None:
    url = f"{base_url}/internal/v1/Recordings"
    for headers in (
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": f"Basic {ADMIN_TOKEN}"},
    ):
        async with anonymous.post(url, json=declaration(account), headers=headers) as response:
            assert response.status == 401
            assert response.headers["WWW-Authenticate"] == "Bearer"


async def test_recorder_api_does_not_exist_without_a_token_configured(
    settings: Settings, recorder: ClientSession, account: Account
) -> None:
    app = create_app(dataclasses.replace(settings, admin_token=None), settings.signing_keys)
    async with GatewayTestServer(app, host="127.0.0.1") as server:
        url = server.make_url("/internal/v1/Recordings")
        async with recorder.post(url, json=declaration(account)) as response:
            assert response.status == 404
