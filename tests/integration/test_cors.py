"""CORS (the Fetch standard, §3.2): what lets a page on another origin read a media link,
and keeps it from reading the API unless an operator says so."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import pytest
from aiohttp import ClientSession
from aiohttp.test_utils import TestServer

from gateway.accounts import create_account
from gateway.api.keys import INGESTION, STORE
from gateway.app import create_app
from gateway.config import Settings
from gateway.errors import ConfigError
from gateway.models import Codec
from tests.conftest import SIGNING_KEY, basic_auth
from tests.in_process import GatewayTestServer
from tests.schema import validate_error

one_backend = pytest.mark.parametrize("backends", ["sqlite+local"], indirect=True)
PAGE = "http://127.0.0.1:9999"  # another origin than the gateway's
OTHER_PAGE = "https://elsewhere.example"
# What a player reads of a range answer beyond the CORS-safelisted response headers.
EXPOSED = {"accept-ranges", "content-disposition", "content-length", "content-range", "etag"}


def exposed(headers: Mapping[str, str]) -> set[str]:
    return {name.strip().lower() for name in headers["Access-Control-Expose-Headers"].split(",")}


class Deployment:
    """A gateway on sqlite+local with `extra` settings, an account and an OPUS recording."""

    def __init__(self, server: TestServer, auth: dict[str, str], sid: str) -> None:
        self.base = str(server.make_url("")).rstrip("/")
        self.auth, self.sid = auth, sid

    async def link(self) -> str:
        async with ClientSession(headers=self.auth) as http:
            url = f"{self.base}/v1/Recordings/{self.sid}/Media"
            async with http.get(url, allow_redirects=False) as response:
                assert response.status == 302
                return (await response.json())["redirect_to"]  # type: ignore[no-any-return]


@pytest.fixture
async def deployed(
    backends: dict[str, str], media_files: dict[Codec, Path], request: pytest.FixtureRequest
) -> AsyncIterator[Deployment]:
    extra: dict[str, str] = getattr(request, "param", {})
    settings = Settings.from_env({**backends, "GATEWAY_SIGNING_KEYS": SIGNING_KEY, **extra})
    app = create_app(settings, settings.signing_keys)
    async with GatewayTestServer(app, host="127.0.0.1") as server:
        account = await create_account(app[STORE], "CORS")
        recording = await app[INGESTION].ingest(media_files[Codec.OPUS], account.sid)
        yield Deployment(server, basic_auth(account.sid, account.auth_token), recording.sid)


@one_backend
async def test_any_page_may_read_a_media_link_and_its_range_headers(deployed: Deployment) -> None:
    link = await deployed.link()
    async with ClientSession() as browser:
        headers = {"Origin": PAGE, "Range": "bytes=0-1023"}
        async with browser.get(link, headers=headers) as response:
            assert response.status == 206
            assert response.headers["Access-Control-Allow-Origin"] == "*"
            assert exposed(response.headers) == EXPOSED
            assert "Access-Control-Allow-Credentials" not in response.headers
            assert len(await response.read()) == 1024
        async with browser.head(link, headers={"Origin": PAGE}) as response:
            assert response.status == 200
            assert response.headers["Access-Control-Allow-Origin"] == "*"


@one_backend
async def test_a_refused_link_tells_the_page_why(deployed: Deployment) -> None:
    # Without CORS headers on the error, a player could not even read its status.
    link = await deployed.link()
    async with (
        ClientSession() as browser,
        browser.get(link[:-3] + "abc", headers={"Origin": PAGE}) as response,
    ):
        assert response.status == 403
        assert response.headers["Access-Control-Allow-Origin"] == "*"
        validate_error(await response.json(), 403, 20403)


@one_backend
async def test_a_preflight_for_a_range_is_answered_204(deployed: Deployment) -> None:
    link = await deployed.link()
    preflight = {
        "Origin": PAGE,
        "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "range,if-range,if-none-match",
    }
    async with ClientSession() as browser, browser.options(link, headers=preflight) as response:
        assert response.status == 204
        assert response.headers["Access-Control-Allow-Origin"] == "*"
        methods = {m.strip() for m in response.headers["Access-Control-Allow-Methods"].split(",")}
        assert {"GET", "HEAD"} <= methods
        allowed = response.headers["Access-Control-Allow-Headers"].lower().split(", ")
        assert {"range", "if-range", "if-none-match"} <= set(allowed)
        assert int(response.headers["Access-Control-Max-Age"]) > 0


@one_backend
@pytest.mark.parametrize("asked", [None, "POST", "DELETE"])
async def test_any_other_options_is_405_listing_what_the_link_allows(
    deployed: Deployment, asked: str | None
) -> None:
    link = await deployed.link()
    headers = {"Origin": PAGE} | ({"Access-Control-Request-Method": asked} if asked else {})
    async with ClientSession() as browser, browser.options(link, headers=headers) as response:
        assert response.status == 405
        assert response.headers["Allow"] == "GET, HEAD, OPTIONS"
        validate_error(await response.json(), 405)


@one_backend
@pytest.mark.parametrize(
    "deployed", [{"GATEWAY_CORS_ORIGINS": f"{PAGE}, https://player.example"}], indirect=True
)
async def test_listed_origins_are_answered_by_name_and_others_not_at_all(
    deployed: Deployment,
) -> None:
    link = await deployed.link()
    async with ClientSession() as browser:
        async with browser.get(link, headers={"Origin": PAGE, "Range": "bytes=0-9"}) as response:
            assert response.status == 206
            assert response.headers["Access-Control-Allow-Origin"] == PAGE
            assert response.headers["Vary"] == "Origin"
            assert exposed(response.headers) == EXPOSED
        headers = {"Origin": OTHER_PAGE, "Range": "bytes=0-9"}
        async with browser.get(link, headers=headers) as response:
            assert response.status == 206  # the bytes still go out: the browser withholds them
            assert "Access-Control-Allow-Origin" not in response.headers
            assert response.headers["Vary"] == "Origin"
        preflight = {"Origin": OTHER_PAGE, "Access-Control-Request-Method": "GET"}
        async with browser.options(link, headers=preflight) as response:
            assert response.status == 204
            assert "Access-Control-Allow-Origin" not in response.headers
            assert "Access-Control-Allow-Methods" not in response.headers


@one_backend
async def test_the_api_answers_no_origin_unless_one_is_listed(deployed: Deployment) -> None:
    url = f"{deployed.base}/v1/Recordings/{deployed.sid}"
    async with ClientSession() as browser:
        async with browser.get(url, headers={**deployed.auth, "Origin": PAGE}) as response:
            assert response.status == 200
            assert "Access-Control-Allow-Origin" not in response.headers
        preflight = {"Origin": PAGE, "Access-Control-Request-Method": "GET"}
        async with browser.options(url, headers=preflight) as response:
            assert response.status == 405
            assert response.headers["Allow"] == "DELETE, GET, HEAD"
            assert "Access-Control-Allow-Origin" not in response.headers


@one_backend
@pytest.mark.parametrize("deployed", [{"GATEWAY_API_CORS_ORIGINS": PAGE}], indirect=True)
async def test_a_listed_origin_may_call_the_api(deployed: Deployment) -> None:
    url = f"{deployed.base}/v1/Recordings/{deployed.sid}"
    async with ClientSession() as browser:
        preflight = {
            "Origin": PAGE,
            "Access-Control-Request-Method": "DELETE",
            "Access-Control-Request-Headers": "authorization",
        }
        async with browser.options(url, headers=preflight) as response:
            assert response.status == 204  # without credentials, as browsers send it
            assert response.headers["Access-Control-Allow-Origin"] == PAGE
            assert "DELETE" in response.headers["Access-Control-Allow-Methods"]
            assert "authorization" in response.headers["Access-Control-Allow-Headers"].lower()
        async with browser.get(url, headers={**deployed.auth, "Origin": PAGE}) as response:
            assert response.status == 200
            assert response.headers["Access-Control-Allow-Origin"] == PAGE
        async with browser.get(url, headers={"Origin": PAGE}) as response:
            assert response.status == 401
            assert response.headers["Access-Control-Allow-Origin"] == PAGE
            validate_error(await response.json(), 401)
        async with browser.get(url, headers={**deployed.auth, "Origin": OTHER_PAGE}) as response:
            assert response.status == 200
            assert "Access-Control-Allow-Origin" not in response.headers


def test_origins_must_be_origins() -> None:
    for value in ("example.com", "https://example.com/path", "ftp://example.com"):
        with pytest.raises(ConfigError, match="GATEWAY_CORS_ORIGINS"):
            Settings.from_env({"GATEWAY_CORS_ORIGINS": value})
    listed = Settings.from_env({"GATEWAY_CORS_ORIGINS": "https://a.example, http://b:8080/"})
    assert listed.cors_origins == ("https://a.example", "http://b:8080")
    assert Settings.from_env({}).cors_origins is None  # any origin
    assert Settings.from_env({}).api_cors_origins == ()  # none
