"""Behind a proxy: what it forwards is believed from GATEWAY_TRUSTED_PROXIES only, and
every request has an id that its answer, its access line and its other log lines carry."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest
from aiohttp import ClientSession

from gateway.accounts import create_account
from gateway.api.keys import INGESTION, STORE
from gateway.app import create_app
from gateway.config import Settings
from gateway.models import Codec
from tests.conftest import SIGNING_KEY, basic_auth
from tests.in_process import GatewayTestServer
from tests.processes import ok, serving
from tests.schema import validate_error

one_backend = pytest.mark.parametrize("backends", ["sqlite+local"], indirect=True)
FORWARDED = {
    "X-Forwarded-Proto": "https",
    "X-Forwarded-Host": "recordings.example.com",
    "X-Forwarded-For": "203.0.113.9",
    "X-Request-Id": "edge-4f2a",
}


async def redirect(
    settings: Settings, media: Path, headers: dict[str, str]
) -> tuple[int, str, str]:
    """Status, `redirect_to` (or the error's message) and X-Request-Id of an issuance."""
    app = create_app(settings, settings.signing_keys)
    async with GatewayTestServer(app, host="127.0.0.1") as server:
        account = await create_account(app[STORE], "Proxied")
        recording = await app[INGESTION].ingest(media, account.sid)
        url = server.make_url(f"/v1/Recordings/{recording.sid}/Media")
        auth = basic_auth(account.sid, account.auth_token)
        async with (
            ClientSession() as http,
            http.get(url, headers={**auth, **headers}, allow_redirects=False) as response,
        ):
            body = await response.json()
            said = body.get("redirect_to") or body["message"]
            return response.status, said, response.headers["X-Request-Id"]


def settings_with(backends: dict[str, str], **extra: str) -> Settings:
    return Settings.from_env(
        {
            **backends,
            "GATEWAY_SIGNING_KEYS": SIGNING_KEY,
            "GATEWAY_ALLOWED_HOSTS": "127.0.0.1,recordings.example.com",
            **extra,
        }
    )


@one_backend
async def test_forwarded_headers_are_ignored_unless_the_proxy_is_trusted(
    backends: dict[str, str], media_files: dict[Codec, Path]
) -> None:
    status, link, ident = await redirect(
        settings_with(backends), media_files[Codec.OPUS], FORWARDED
    )
    assert status == 302
    assert link.startswith("http://127.0.0.1:")
    assert ident != "edge-4f2a"
    assert re.fullmatch(r"[0-9a-f]+-[0-9a-f]+", ident)


@one_backend
async def test_a_trusted_proxy_names_the_origin_the_client_asked_for(
    backends: dict[str, str], media_files: dict[Codec, Path]
) -> None:
    settings = settings_with(backends, GATEWAY_TRUSTED_PROXIES="127.0.0.0/8")
    status, link, ident = await redirect(settings, media_files[Codec.OPUS], FORWARDED)
    assert status == 302
    assert link.startswith("https://recordings.example.com/media/")
    assert ident == "edge-4f2a"
    rfc7239 = {"Forwarded": 'for=203.0.113.9;proto=https;host="recordings.example.com"'}
    status, link, _ = await redirect(settings, media_files[Codec.OPUS], rfc7239)
    assert link.startswith("https://recordings.example.com/media/")
    # Even a trusted proxy's host is held to GATEWAY_ALLOWED_HOSTS.
    elsewhere = {**FORWARDED, "X-Forwarded-Host": "evil.example"}
    status, message, _ = await redirect(settings, media_files[Codec.OPUS], elsewhere)
    assert status == 400
    assert "evil.example" in message


@one_backend
async def test_every_answer_carries_its_request_id(base_url: str) -> None:
    async with ClientSession() as client:
        seen = set()
        for path in ("/healthz", "/v1/Recordings", "/no/such/thing", "/media/forged"):
            async with client.get(f"{base_url}{path}") as response:
                seen.add(response.headers["X-Request-Id"])
        async with client.get(f"{base_url}/v1/Recordings") as response:
            assert response.status == 401
            validate_error(await response.json(), 401)
            seen.add(response.headers["X-Request-Id"])
    assert len(seen) == 5  # one each


@one_backend
async def test_log_lines_of_a_request_carry_its_id_and_the_client_behind_the_proxy(
    env: dict[str, str], tmp_path: Path, media_files: dict[Codec, Path]
) -> None:
    env = {**env, "GATEWAY_TRUSTED_PROXIES": "127.0.0.1", "GATEWAY_PUBLIC_URL": ""}
    account = await asyncio.to_thread(ok, env, "accounts", "create")
    recording = await asyncio.to_thread(
        ok, env, "ingest", str(media_files[Codec.OPUS]), "--account", account["account_sid"]
    )
    with serving(env, cwd=tmp_path) as served:
        auth = basic_auth(account["account_sid"], account["auth_token"])
        async with ClientSession() as http:
            url = f"{served.base_url}/v1/Recordings/{recording['sid']}/Media"
            async with http.get(url, headers=auth, allow_redirects=False) as response:
                link = (await response.json())["redirect_to"]
            # The media goes missing behind the metadata's back: the download logs an error.
            for stored in (tmp_path / "media").rglob("*.mka"):
                stored.unlink()
            headers = {"X-Forwarded-For": "203.0.113.9", "X-Request-Id": "edge-77"}
            async with http.get(link, headers=headers) as response:
                assert response.status == 404
                assert response.headers["X-Request-Id"] == "edge-77"
        await asyncio.sleep(0.3)  # for the access line, written at the end of a loop turn
    logged = "".join(served.output)
    error = [line for line in logged.splitlines() if "storage does not have it" in line]
    assert len(error) == 1
    assert error[0].endswith(" request_id=edge-77")
    access = [line for line in logged.splitlines() if '"GET /media/{token}" 404' in line]
    assert len(access) == 1
    assert " 203.0.113.9 " in access[0]
    assert access[0].endswith(" request_id=edge-77")
    token = link.rsplit("/", 1)[1]
    assert token not in logged
    assert auth["Authorization"].split()[1] not in logged
