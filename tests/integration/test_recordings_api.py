"""The Recordings resources through the official helper library and plain HTTP."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiohttp import ClientSession
from twilio.base.exceptions import TwilioRestException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.rest import Client

from gateway.config import Settings
from gateway.ingestion import Ingestion
from gateway.models import Account, Codec, Recording, Status
from gateway.sids import mint
from tests.schema import validate, validate_error


async def test_fetch_returns_every_schema_property(
    twilio: Client, http: ClientSession, base_url: str, ingested: dict[Codec, Recording]
) -> None:
    audio = ingested[Codec.OPUS]
    fetched = await twilio.video.v1.recordings(audio.sid).fetch_async()
    assert fetched.sid == audio.sid
    assert fetched.status == "completed"
    assert fetched.codec == "OPUS"
    assert fetched.container_format == "mka"
    assert fetched.type == "audio"
    assert fetched.duration == 3
    assert fetched.size == audio.size > 0
    assert fetched.grouping_sids == {
        "room_sid": audio.room_sid,
        "participant_sid": audio.participant_sid,
    }
    assert fetched.track_name == audio.source_sid  # "if no name is given, the source_sid"
    assert fetched.url == f"{base_url}/v1/Recordings/{audio.sid}"
    assert fetched.links == {"media": f"{base_url}/v1/Recordings/{audio.sid}/Media"}
    assert fetched.date_created == audio.date_created.replace(microsecond=0)
    async with http.get(f"{base_url}/v1/Recordings/{audio.sid}") as response:
        assert response.status == 200
        validate(await response.json(), "/v1/Recordings/{Sid}")


async def test_video_recording_reports_mkv_and_its_codec(
    twilio: Client, ingested: dict[Codec, Recording]
) -> None:
    for codec in (Codec.VP8, Codec.H264):
        fetched = await twilio.video.v1.recordings(ingested[codec].sid).fetch_async()
        assert (fetched.type, fetched.container_format, fetched.codec) == ("video", "mkv", codec)


async def test_fetch_unknown_recording_raises_20404(twilio: Client) -> None:
    with pytest.raises(TwilioRestException) as raised:
        await twilio.video.v1.recordings(mint("RT")).fetch_async()
    assert (raised.value.status, raised.value.code) == (404, 20404)


async def test_wrong_auth_token_raises_20003(
    account: Account, base_url: str, ingested: dict[Codec, Recording]
) -> None:
    async with AsyncTwilioHttpClient() as http_client:
        client = Client(account.sid, "0" * 32, http_client=http_client)
        client.video.base_url = base_url
        with pytest.raises(TwilioRestException) as raised:
            await client.video.v1.recordings(ingested[Codec.OPUS].sid).fetch_async()
    assert (raised.value.status, raised.value.code) == (401, 20003)


async def test_missing_credentials_is_401_with_www_authenticate(
    anonymous: ClientSession, base_url: str
) -> None:
    async with anonymous.get(f"{base_url}/v1/Recordings") as response:
        assert response.status == 401
        assert response.headers["WWW-Authenticate"].startswith("Basic ")
        validate_error(await response.json(), 401)


async def test_another_accounts_recording_is_404_not_403(
    other_account: Account, base_url: str, ingested: dict[Codec, Recording]
) -> None:
    async with AsyncTwilioHttpClient() as http_client:
        client = Client(other_account.sid, other_account.auth_token, http_client=http_client)
        client.video.base_url = base_url
        with pytest.raises(TwilioRestException) as raised:
            await client.video.v1.recordings(ingested[Codec.OPUS].sid).fetch_async()
        assert raised.value.status == 404
        assert await client.video.v1.recordings.list_async() == []


async def test_api_key_authenticates_as_its_account(
    app: object, account: Account, base_url: str, ingested: dict[Codec, Recording]
) -> None:
    from gateway.accounts import create_api_key
    from gateway.api.keys import STORE

    key, secret = await create_api_key(app[STORE], account.sid)  # type: ignore[index]
    async with AsyncTwilioHttpClient() as http_client:
        client = Client(key.sid, secret, account.sid, http_client=http_client)
        client.video.base_url = base_url
        listed = await client.video.v1.recordings.list_async()
    assert {r.sid for r in listed} == {r.sid for r in ingested.values()}


@pytest.fixture
async def many(
    ingestion: Ingestion, account: Account, media_files: dict[Codec, Path]
) -> list[Recording]:
    """Seven recordings in two rooms, an hour apart, newest last."""
    room_a, room_b, alice, bob = mint("RM"), mint("RM"), mint("PA"), mint("PA")
    made = []
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for index in range(7):
        ingestion.now = lambda index=index: (start + timedelta(hours=index)).timestamp()
        codec = Codec.OPUS if index % 2 == 0 else Codec.VP8
        made.append(
            await ingestion.ingest(
                media_files[codec],
                account.sid,
                room_sid=room_a if index < 4 else room_b,
                participant_sid=alice if index % 3 else bob,
                track_name=f"track-{index}",
            )
        )
    return made


async def test_list_is_newest_first_and_walks_every_page(
    twilio: Client, http: ClientSession, base_url: str, many: list[Recording]
) -> None:
    listed = await twilio.video.v1.recordings.list_async(page_size=2)
    assert [r.sid for r in listed] == [r.sid for r in reversed(many)]
    streamed = [r.sid async for r in await twilio.video.v1.recordings.stream_async(page_size=3)]
    assert streamed == [r.sid for r in reversed(many)]
    async with http.get(f"{base_url}/v1/Recordings", params={"PageSize": "3"}) as response:
        body = await response.json()
    validate(body, "/v1/Recordings")
    assert body["meta"]["page"] == 0
    assert body["meta"]["page_size"] == 3
    assert body["meta"]["key"] == "recordings"
    assert body["meta"]["previous_page_url"] is None
    assert body["meta"]["first_page_url"] == f"{base_url}/v1/Recordings?PageSize=3&Page=0"
    assert "PageToken=" in body["meta"]["next_page_url"]


async def test_previous_page_url_leads_back_to_the_same_page(
    http: ClientSession, base_url: str, many: list[Recording]
) -> None:
    async with http.get(f"{base_url}/v1/Recordings?PageSize=2") as response:
        first = await response.json()
    async with http.get(first["meta"]["next_page_url"]) as response:
        second = await response.json()
    assert second["meta"]["page"] == 1
    async with http.get(second["meta"]["next_page_url"]) as response:
        third = await response.json()
    async with http.get(third["meta"]["previous_page_url"]) as response:
        back = await response.json()
    assert [r["sid"] for r in back["recordings"]] == [r["sid"] for r in second["recordings"]]
    async with http.get(back["meta"]["previous_page_url"]) as response:
        front = await response.json()
    assert [r["sid"] for r in front["recordings"]] == [r["sid"] for r in first["recordings"]]
    assert front["meta"]["previous_page_url"] is None


async def test_last_page_has_no_next_page_url(
    http: ClientSession, base_url: str, many: list[Recording]
) -> None:
    async with http.get(f"{base_url}/v1/Recordings?PageSize=7") as response:
        body = await response.json()
    assert len(body["recordings"]) == 7
    assert body["meta"]["next_page_url"] is None


async def test_list_filters_each_narrow_the_result(twilio: Client, many: list[Recording]) -> None:
    recordings = twilio.video.v1.recordings

    async def sids(**filters: object) -> list[str]:
        return [r.sid for r in await recordings.list_async(page_size=2, **filters)]

    newest_first = list(reversed(many))
    room_a, alice = many[0].room_sid, many[1].participant_sid
    assert await sids(grouping_sid=[room_a]) == [
        r.sid for r in newest_first if r.room_sid == room_a
    ]
    assert await sids(grouping_sid=[room_a, alice]) == [
        r.sid for r in newest_first if r.room_sid == room_a and r.participant_sid == alice
    ]
    assert await sids(source_sid=many[2].source_sid) == [many[2].sid]
    assert await sids(media_type="video") == [r.sid for r in newest_first if r.type == "video"]
    assert await sids(status="completed") == [r.sid for r in newest_first]
    assert await sids(status="processing") == []
    after, before = many[2].date_created, many[5].date_created
    assert await sids(date_created_after=after, date_created_before=before) == [
        many[4].sid, many[3].sid, many[2].sid
    ]  # fmt: skip


async def test_grouping_sid_accepts_a_json_array_string(
    http: ClientSession, base_url: str, many: list[Recording]
) -> None:
    room_b = many[-1].room_sid
    query = {"GroupingSid": f'["{room_b}"]'}
    async with http.get(f"{base_url}/v1/Recordings", params=query) as response:
        body = await response.json()
    assert [r["sid"] for r in body["recordings"]] == [r.sid for r in reversed(many[4:])]
    assert body["meta"]["url"].endswith(f"GroupingSid={room_b}&PageSize=50&Page=0")


async def test_delete_keeps_metadata_as_deleted_and_hides_it_from_the_list(
    twilio: Client, ingested: dict[Codec, Recording], settings: Settings
) -> None:
    target = ingested[Codec.VP8]
    assert await twilio.video.v1.recordings(target.sid).delete_async() is True
    fetched = await twilio.video.v1.recordings(target.sid).fetch_async()
    assert fetched.status == Status.DELETED
    listed = {r.sid for r in await twilio.video.v1.recordings.list_async()}
    assert target.sid not in listed
    deleted = await twilio.video.v1.recordings.list_async(status="deleted")
    assert [r.sid for r in deleted] == [target.sid]
    assert target.media_key is not None
    assert not (settings.storage_path / target.media_key).exists()


async def test_room_recordings_list_fetch_and_delete(
    twilio: Client,
    http: ClientSession,
    base_url: str,
    many: list[Recording],
) -> None:
    room_a = many[0].room_sid
    assert room_a is not None
    room = twilio.video.v1.rooms(room_a)
    listed = await room.recordings.list_async(page_size=3)
    assert [r.sid for r in listed] == [r.sid for r in reversed(many[:4])]
    fetched = await room.recordings(many[0].sid).fetch_async()
    assert fetched.room_sid == room_a
    assert fetched.url == f"{base_url}/v1/Rooms/{room_a}/Recordings/{many[0].sid}"
    assert fetched.links["media"] == f"{fetched.url}/Media"
    async with http.get(f"{base_url}/v1/Rooms/{room_a}/Recordings?PageSize=3") as response:
        body = await response.json()
    validate(body, "/v1/Rooms/{RoomSid}/Recordings")
    async with http.get(fetched.url) as response:
        validate(await response.json(), "/v1/Rooms/{RoomSid}/Recordings/{Sid}")
    assert await room.recordings(many[0].sid).delete_async() is True
    assert (await room.recordings(many[0].sid).fetch_async()).status == "deleted"


async def test_recording_of_another_room_is_404_under_this_room(
    twilio: Client, many: list[Recording]
) -> None:
    in_room_b = many[-1]
    room_a = twilio.video.v1.rooms(many[0].room_sid)
    with pytest.raises(TwilioRestException) as raised:
        await room_a.recordings(in_room_b.sid).fetch_async()
    assert raised.value.status == 404
    with pytest.raises(TwilioRestException) as raised:
        await room_a.recordings(in_room_b.sid).delete_async()
    assert raised.value.status == 404
    assert (await twilio.video.v1.recordings(in_room_b.sid).fetch_async()).status == "completed"
