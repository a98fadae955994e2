"""Bad input gets a clear 4xx in Twilio's error shape naming what was wrong; never a 500."""

from __future__ import annotations

import pytest
from aiohttp import ClientSession, web

from gateway.api.keys import STORAGE
from gateway.app import create_app
from gateway.config import Settings
from gateway.models import Codec, Recording
from gateway.sids import mint
from tests.conftest import basic_auth
from tests.in_process import GatewayTestServer
from tests.schema import validate_error


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ({"PageSize": "0"}, "PageSize"),
        ({"PageSize": "ten"}, "PageSize"),
        ({"Page": "-1"}, "Page"),
        ({"Page": "3"}, "Page"),
        ({"Status": "archived"}, "Status"),
        ({"MediaType": "text"}, "MediaType"),
        ({"SourceSid": "MT123"}, "SourceSid"),
        ({"GroupingSid": "not-a-sid"}, "GroupingSid"),
        ({"GroupingSid": '["RM123"'}, "GroupingSid"),
        ({"GroupingSid": "[1, 2]"}, "GroupingSid"),
        ({"DateCreatedAfter": "yesterday"}, "DateCreatedAfter"),
        ({"DateCreatedBefore": "2026-13-01T00:00:00Z"}, "DateCreatedBefore"),
        ({"PageToken": "garbage!"}, "PageToken"),
        ({"PageToken": "bjEyMzpSVDEyMw"}, "PageToken"),
    ],
)
async def test_bad_list_parameter_is_400_naming_it(
    http: ClientSession, base_url: str, query: dict[str, str], named: str
) -> None:
    for path in ("/v1/Recordings", f"/v1/Rooms/{mint('RM')}/Recordings"):
        async with http.get(f"{base_url}{path}", params=query) as response:
            assert response.status == 400
            body = await response.json()
        validate_error(body, 400)
        assert named in body["message"]


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ({"Ttl": "0"}, "Ttl"),
        ({"Ttl": "3601"}, "Ttl"),
        ({"Ttl": "1.5"}, "Ttl"),
        ({"ContentDisposition": "form-data"}, "ContentDisposition"),
        (
            {"ContentDisposition": 'attachment; filename="a\r\nSet-Cookie: x=1"'},
            "ContentDisposition",
        ),
        ({"ContentDisposition": 'attachment; filename="a"b.mka"'}, "ContentDisposition"),
        ({"ContentDisposition": "attachment; filename=a\x01.mka"}, "ContentDisposition"),
        ({"ContentDisposition": "attachment; filename="}, "ContentDisposition"),
        ({"ContentDisposition": "attachment; size=3"}, "ContentDisposition"),
    ],
)
async def test_bad_media_parameter_is_400_naming_it(
    http: ClientSession,
    base_url: str,
    ingested: dict[Codec, Recording],
    query: dict[str, str],
    named: str,
) -> None:
    url = f"{base_url}/v1/Recordings/{ingested[Codec.OPUS].sid}/Media"
    async with http.get(url, params=query, allow_redirects=False) as response:
        assert response.status == 400
        body = await response.json()
    validate_error(body, 400)
    assert named in body["message"]


@pytest.mark.parametrize(
    "path",
    [
        "/v1/Recordings/RT123",
        "/v1/Recordings/not-a-sid",
        f"/v1/Recordings/{mint('RT')}",
        f"/v1/Recordings/{mint('RT')}/Media",
        f"/v1/Recordings/{mint('CA')}",
        "/v1/Rooms/RM1/Recordings",
        f"/v1/Rooms/{mint('PA')}/Recordings",
        f"/v1/Rooms/{mint('RM')}/Recordings/{mint('RT')}",
        "/v1/Compositions",
        "/media/",
        "/nothing/here",
    ],
)
async def test_unknown_resource_is_404_in_twilio_shape(
    http: ClientSession, base_url: str, path: str
) -> None:
    async with http.get(f"{base_url}{path}", allow_redirects=False) as response:
        assert response.status == 404
        validate_error(await response.json(), 404)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v1/Recordings"),
        ("PUT", "/v1/Recordings/{sid}"),
        ("POST", "/v1/Recordings/{sid}"),
        ("DELETE", "/v1/Recordings"),
        ("POST", "/v1/Recordings/{sid}/Media"),
        ("DELETE", "/v1/Recordings/{sid}/Media"),
        ("PATCH", "/v1/Rooms/{room}/Recordings/{sid}"),
        ("POST", "/media/anything"),
    ],
)
async def test_other_methods_are_405_in_twilio_shape(
    http: ClientSession,
    base_url: str,
    ingested: dict[Codec, Recording],
    method: str,
    path: str,
) -> None:
    recording = ingested[Codec.OPUS]
    url = base_url + path.format(sid=recording.sid, room=recording.room_sid)
    async with http.request(method, url) as response:
        assert response.status == 405
        validate_error(await response.json(), 405)


@pytest.mark.parametrize(
    "authorization",
    ["Bearer abc", "Basic !!!", "Basic " + "QUM=", "Digest x", "Basic Tm9Db2xvbg=="],
)
async def test_malformed_authorization_is_401(
    anonymous: ClientSession, base_url: str, authorization: str
) -> None:
    headers = {"Authorization": authorization}
    async with anonymous.get(f"{base_url}/v1/Recordings", headers=headers) as response:
        assert response.status == 401
        validate_error(await response.json(), 401)


@pytest.mark.parametrize("token", ["x", "a.b", "." * 40, "%00", "A" * 5000])
async def test_garbage_media_token_is_403(
    anonymous: ClientSession, base_url: str, token: str
) -> None:
    async with anonymous.get(f"{base_url}/media/{token}") as response:
        assert response.status == 403
        validate_error(await response.json(), 403)


async def test_media_missing_from_storage_is_404_not_500(
    caplog: pytest.LogCaptureFixture,
    app: web.Application,
    http: ClientSession,
    anonymous: ClientSession,
    base_url: str,
    ingested: dict[Codec, Recording],
) -> None:
    recording = ingested[Codec.VP8]
    assert recording.media_key is not None
    await app[STORAGE].delete(recording.media_key)  # behind the metadata's back
    url = f"{base_url}/v1/Recordings/{recording.sid}/Media"
    async with http.get(url, allow_redirects=False) as response:
        link = (await response.json())["redirect_to"]
    for method in ("GET", "HEAD"):
        async with anonymous.request(method, link) as response:
            assert response.status == 404
    async with anonymous.get(link) as response:
        validate_error(await response.json(), 404)
    assert any(recording.media_key in r.getMessage() for r in caplog.records)


class BrokenStore:
    """A store whose database has gone away in a way nobody planned for."""

    async def get_account(self, sid: str) -> None:
        raise RuntimeError("disk I/O error")

    async def aclose(self) -> None:
        pass


async def test_unexpected_failure_is_a_generic_twilio_500_and_logged(
    caplog: pytest.LogCaptureFixture, settings: Settings, anonymous: ClientSession
) -> None:
    app = create_app(settings, settings.signing_keys, store=BrokenStore())  # type: ignore[arg-type]
    async with GatewayTestServer(app, host="127.0.0.1") as server:
        headers = basic_auth(mint("AC"), "token")
        async with anonymous.get(server.make_url("/v1/Recordings"), headers=headers) as response:
            assert response.status == 500
            body = await response.json()
    validate_error(body, 500)
    assert "disk I/O error" not in body["message"]  # internals stay in the log
    assert any("disk I/O error" in (r.exc_text or "") for r in caplog.records)
