"""What an attacker sends gets a Twilio-shaped 4xx naming what was wrong, and the server
log no traceback: one test per family of requests that once reached a 500."""

from __future__ import annotations

import base64
import dataclasses
import io
import logging
from collections.abc import AsyncIterator, Iterator

import pytest
from aiohttp import ClientSession
from aiohttp.test_utils import TestServer
from twilio.rest import Client

from gateway.accounts import create_account
from gateway.api.keys import STORE
from gateway.app import create_app
from gateway.config import Settings
from gateway.models import Account, Codec, Recording
from gateway.sids import mint
from tests.conftest import ADMIN_TOKEN, basic_auth
from tests.in_process import GatewayTestServer
from tests.raw import exchange, request
from tests.schema import validate_error

# What these requests test lies above the backends, which cannot change the answer.
one_backend = pytest.mark.parametrize("backends", ["sqlite+local"], indirect=True)


@pytest.fixture(autouse=True)
def no_traceback_logged(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Bad input is the client's mistake: the server log gets no traceback for it."""
    caplog.set_level(logging.INFO)
    yield
    logged = [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert logged == [], [r.getMessage() for r in logged]


@pytest.fixture
async def media_link(http: ClientSession, base_url: str, ingested: dict[Codec, Recording]) -> str:
    url = f"{base_url}/v1/Recordings/{ingested[Codec.OPUS].sid}/Media"
    async with http.get(url, allow_redirects=False) as response:
        return (await response.json())["redirect_to"]  # type: ignore[no-any-return]


def api_paths(recording: Recording) -> list[str]:
    room, sid = recording.room_sid, recording.sid
    return [
        "/v1/Recordings",
        f"/v1/Recordings/{sid}",
        f"/v1/Recordings/{sid}/Media",
        f"/v1/Rooms/{room}/Recordings",
        f"/v1/Rooms/{room}/Recordings/{sid}",
        f"/v1/Rooms/{room}/Recordings/{sid}/Media",
    ]


# --- Before authentication ---------------------------------------------------------------


@one_backend
@pytest.mark.parametrize("password", [b"\xff", b"caf\xc3\xa9", b"\xed\xa0\x80", b"\x00"])
async def test_basic_password_with_any_bytes_is_401_on_every_api_route(
    anonymous: ClientSession,
    base_url: str,
    account: Account,
    ingested: dict[Codec, Recording],
    password: bytes,
) -> None:
    credentials = base64.b64encode(account.sid.encode() + b":" + password).decode()
    for path in api_paths(ingested[Codec.VP8]):
        headers = {"Authorization": f"Basic {credentials}"}
        async with anonymous.get(base_url + path, headers=headers) as response:
            assert response.status == 401
            assert response.headers["WWW-Authenticate"] == 'Basic realm="Twilio API"'
            validate_error(await response.json(), 401)


@one_backend
@pytest.mark.parametrize("token", [b"\xff\xfe", b"caf\xc3\xa9", ADMIN_TOKEN.encode() + b"\x80"])
async def test_bearer_token_with_bytes_that_are_not_the_token_is_401(
    base_url: str, token: bytes
) -> None:
    raw = request("POST", "/internal/v1/Recordings", {"Content-Length": "0"}).replace(
        b"Connection: close", b"Connection: close\r\nAuthorization: Bearer " + token
    )
    answer = await exchange(base_url, raw)
    assert answer.status == 401
    assert answer.headers["WWW-Authenticate"] == "Bearer"
    validate_error(answer.json(), 401)


# --- With only a link ----------------------------------------------------------------------


@one_backend
@pytest.mark.parametrize(
    ("range_header", "status"),
    [
        ("bytes=0-" + "9" * 5000, 206),  # last-pos past the end: up to the end (§14.1.2)
        ("bytes=-" + "9" * 5000, 206),  # a suffix longer than the file: all of it
        ("bytes=" + "9" * 5000 + "-", 416),  # first-pos past the end: unsatisfiable
        ("bytes=" + "0" * 4000 + "1-" + "0" * 4000 + "2", 206),  # leading zeros: 1-2
        ("bytes=" + "9" * 4000 + "-" + "8" * 4000, 200),  # last < first: ignored
    ],
)
async def test_range_numbers_of_thousands_of_digits_are_read_as_rfc_9110_says(
    anonymous: ClientSession,
    media_link: str,
    ingested: dict[Codec, Recording],
    range_header: str,
    status: int,
) -> None:
    size = ingested[Codec.OPUS].size
    async with anonymous.get(media_link, headers={"Range": range_header}) as response:
        assert response.status == status
        if status == 416:
            assert response.headers["Content-Range"] == f"bytes */{size}"
            validate_error(await response.json(), 416)
        elif "0001-" in range_header:
            assert response.headers["Content-Range"] == f"bytes 1-2/{size}"
        elif status == 206:
            assert response.headers["Content-Range"] == f"bytes 0-{size - 1}/{size}"


# --- Query parameters ----------------------------------------------------------------------


@one_backend
@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DateCreatedAfter", "0001-01-01T00:00:00+01:00"),
        ("DateCreatedBefore", "9999-12-31T23:59:59-01:00"),
        ("PageSize", "1_0"),
        ("PageSize", "\u0665"),
        ("PageSize", "\uff15"),
        ("PageSize", " 5"),
        ("PageSize", "+5"),
        ("PageSize", "\n5"),
        ("PageSize", "0"),
        ("PageSize", "-5"),
        ("Page", "9" * 5000),
    ],
)
async def test_list_parameter_that_overflows_or_is_not_ascii_digits_is_400_naming_it(
    http: ClientSession, base_url: str, name: str, value: str
) -> None:
    for path in ("/v1/Recordings", f"/v1/Rooms/{mint('RM')}/Recordings"):
        async with http.get(base_url + path, params={name: value}) as response:
            assert response.status == 400
            body = await response.json()
        validate_error(body, 400)
        assert name in body["message"]


@one_backend
async def test_page_size_above_1000_is_a_page_of_1000(http: ClientSession, base_url: str) -> None:
    async with http.get(f"{base_url}/v1/Recordings", params={"PageSize": "1500"}) as response:
        assert response.status == 200
        meta = (await response.json())["meta"]
    assert meta["page_size"] == 1000
    assert "PageSize=1000" in meta["url"]


@one_backend
async def test_helper_library_list_with_a_limit_above_1000_works(
    twilio: Client, ingested: dict[Codec, Recording]
) -> None:
    # twilio-python sends PageSize=1500 for this, as twilio-node 6 does.
    found = await twilio.video.v1.recordings.list_async(limit=1500)
    assert {r.sid for r in found} == {r.sid for r in ingested.values()}


@one_backend
@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("Ttl", "1_0"),
        ("Ttl", "\u0661\u0662"),
        ("Ttl", " 60"),
        ("Ttl", "9" * 5000),
        ("ContentDisposition", 'attachment; filename="evil\u202eakm.exe"'),
        ("ContentDisposition", 'attachment; filename="a\u200bb.mka"'),
        ("ContentDisposition", 'attachment; filename="line\u2028break.mka"'),
    ],
)
async def test_media_parameter_that_is_not_digits_or_hides_its_extension_is_400(
    http: ClientSession,
    base_url: str,
    ingested: dict[Codec, Recording],
    name: str,
    value: str,
) -> None:
    url = f"{base_url}/v1/Recordings/{ingested[Codec.OPUS].sid}/Media"
    async with http.get(url, params={name: value}, allow_redirects=False) as response:
        assert response.status == 400
        body = await response.json()
    validate_error(body, 400)
    assert name in body["message"]


# --- Host --------------------------------------------------------------------------------


@one_backend
@pytest.mark.parametrize(
    "host",
    [
        "[",
        "[::1",
        "",
        "localhost:99999",
        "localhost:-1",
        "localhost:0",
        "evil.example",
        "evil.example:443",
        "evil.example/x?",
        "a@b",
        'x"<script>',
        "evil.example#",
        "localhost.evil.example",
    ],
)
async def test_host_that_is_malformed_or_not_allowed_is_400_where_urls_are_built(
    base_url: str, account: Account, ingested: dict[Codec, Recording], host: str
) -> None:
    auth = basic_auth(account.sid, account.auth_token)
    for path in api_paths(ingested[Codec.VP8]):
        answer = await exchange(base_url, request("GET", path, auth, host=host))
        assert answer.status == 400, (path, answer.body)
        assert answer.headers["X-Content-Type-Options"] == "nosniff"
        body = answer.json()
        validate_error(body, 400)
        assert "Host" in body["message"]


@one_backend
@pytest.mark.parametrize("host", ["localhost", "LOCALHOST:8080", "127.0.0.1:1234", "[::1]:80"])
async def test_allowed_host_on_any_port_names_itself_in_every_url(
    base_url: str, account: Account, ingested: dict[Codec, Recording], host: str
) -> None:
    auth = basic_auth(account.sid, account.auth_token)
    recording = ingested[Codec.VP8]
    answer = await exchange(
        base_url, request("GET", f"/v1/Recordings/{recording.sid}", auth, host=host)
    )
    assert answer.status == 200
    assert answer.json()["url"] == f"http://{host.lower()}/v1/Recordings/{recording.sid}"
    media = await exchange(
        base_url, request("GET", f"/v1/Recordings/{recording.sid}/Media", auth, host=host)
    )
    assert media.status == 302
    assert media.headers["Location"].startswith(f"http://{host.lower()}/media/")


@pytest.fixture
async def public_url_server(settings: Settings) -> AsyncIterator[TestServer]:
    public = dataclasses.replace(settings, public_url="https://recordings.example.com")
    async with GatewayTestServer(
        create_app(public, public.signing_keys), host="127.0.0.1"
    ) as server:
        yield server


@one_backend
async def test_host_is_ignored_when_the_public_url_is_set(
    public_url_server: TestServer, settings: Settings
) -> None:
    store_account = await _account(public_url_server)
    base = str(public_url_server.make_url("")).rstrip("/")
    auth = basic_auth(store_account.sid, store_account.auth_token)
    for host in ("evil.example", "[", ""):
        answer = await exchange(base, request("GET", "/v1/Recordings", auth, host=host))
        assert answer.status == 200
        assert answer.json()["meta"]["url"].startswith("https://recordings.example.com/v1/")


async def _account(server: TestServer) -> Account:
    return await create_account(server.app[STORE], "Public")


# --- The recorder API ----------------------------------------------------------------------


@pytest.fixture
async def recorder() -> AsyncIterator[ClientSession]:
    async with ClientSession(headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as session:
        yield session


@one_backend
async def test_recorder_json_nested_beyond_the_parsers_stack_is_400(
    recorder: ClientSession, base_url: str
) -> None:
    data = "[" * 100_000 + "]" * 100_000
    headers = {"Content-Type": "application/json"}
    url = f"{base_url}/internal/v1/Recordings"
    async with recorder.post(url, data=data, headers=headers) as response:
        assert response.status == 400
        validate_error(await response.json(), 400)


@one_backend
async def test_recorder_json_over_one_mib_is_413_in_twilio_shape(
    recorder: ClientSession, base_url: str, account: Account
) -> None:
    data = io.BytesIO(('{"track_name": "' + "x" * (1024 * 1024) + '"}').encode())
    url = f"{base_url}/internal/v1/Recordings"
    async with recorder.post(url, data=data, headers={"Content-Type": "application/json"}) as r:
        assert r.status == 413
        validate_error(await r.json(), 413)


# --- 405 and the Allow header -------------------------------------------------------------

# RFC 9110 §15.5.6: a 405 MUST send Allow with the target's methods; HEAD comes with GET.
ALLOWED = {
    "/v1/Recordings": "GET, HEAD",
    "/v1/Recordings/{sid}": "DELETE, GET, HEAD",
    "/v1/Recordings/{sid}/Media": "GET, HEAD",
    "/v1/Rooms/{room}/Recordings": "GET, HEAD",
    "/v1/Rooms/{room}/Recordings/{sid}": "DELETE, GET, HEAD",
    "/v1/Rooms/{room}/Recordings/{sid}/Media": "GET, HEAD",
    "/media/{token}": "GET, HEAD, OPTIONS",
    "/internal/v1/Recordings": "POST",
    "/internal/v1/Recordings/{sid}/Media": "PUT",
    "/internal/v1/Recordings/{sid}/Complete": "POST",
    "/internal/v1/Recordings/{sid}/Fail": "POST",
    "/healthz": "GET, HEAD",
    "/readyz": "GET, HEAD",
}
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE")


@one_backend
@pytest.mark.parametrize("template", list(ALLOWED))
async def test_every_method_a_route_does_not_serve_is_405_listing_those_it_does(
    base_url: str, account: Account, ingested: dict[Codec, Recording], template: str
) -> None:
    recording = ingested[Codec.VP8]
    path = template.format(sid=recording.sid, room=recording.room_sid, token="t")
    credentials = (
        {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        if template.startswith("/internal/")
        else basic_auth(account.sid, account.auth_token)
    )
    allowed = ALLOWED[template].split(", ")
    for method in METHODS:
        if method in allowed:
            continue
        answer = await exchange(base_url, request(method, path, credentials))
        assert answer.status == 405, (method, path)
        assert answer.headers["Allow"] == ALLOWED[template]
        if method != "HEAD":  # which has no body to show
            validate_error(answer.json(), 405)


@one_backend
async def test_connect_is_404_naming_what_it_asked_for(base_url: str) -> None:
    answer = await exchange(base_url, b"CONNECT example.com:443 HTTP/1.1\r\nHost: x\r\n\r\n")
    assert answer.status == 404
    body = answer.json()
    validate_error(body, 404)
    assert "example.com:443" in body["message"]


@one_backend
async def test_every_answer_says_nosniff(
    http: ClientSession, anonymous: ClientSession, base_url: str, media_link: str
) -> None:
    urls = [
        (http, f"{base_url}/v1/Recordings"),
        (http, f"{base_url}/v1/Recordings/{mint('RT')}"),
        (anonymous, f"{base_url}/v1/Recordings"),
        (anonymous, media_link),
        (anonymous, f"{base_url}/media/forged"),
        (anonymous, f"{base_url}/healthz"),
    ]
    for session, url in urls:
        async with session.get(url, headers={"Range": "bytes=0-9"}) as response:
            assert response.headers["X-Content-Type-Options"] == "nosniff", url
