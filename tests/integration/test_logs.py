"""What `gateway serve` writes to its log: one access line per request with what an
operator needs, as text or as JSON for log pipelines, and never a credential."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientSession

from gateway.models import Codec
from tests.conftest import basic_auth
from tests.processes import ok, serving

pytestmark = pytest.mark.parametrize("backends", ["sqlite+local"], indirect=True)


async def exercise(
    env: dict[str, str], tmp_path: Path, media: Path, agent: str = "player/1.0"
) -> tuple[list[str], dict[str, str], str]:
    """Issue a link, fetch a range of it and get a 404 through a served process: its
    output lines, the account and the link."""
    env = {**env, "GATEWAY_PUBLIC_URL": ""}  # links to the process itself
    account = await asyncio.to_thread(ok, env, "accounts", "create")
    recording = await asyncio.to_thread(
        ok, env, "ingest", str(media), "--account", account["account_sid"]
    )
    ids = {"account": account["account_sid"], "recording": recording["sid"]}
    auth = basic_auth(account["account_sid"], account["auth_token"])
    with serving(env, cwd=tmp_path) as served:
        async with ClientSession(headers={"User-Agent": agent}) as http:
            url = f"{served.base_url}/v1/Recordings/{recording['sid']}/Media"
            async with http.get(url, headers=auth, allow_redirects=False) as response:
                link = (await response.json())["redirect_to"]
            async with http.get(link, headers={"Range": "bytes=0-99"}) as response:
                assert response.status == 206
                await response.read()
            async with http.get(f"{served.base_url}/nowhere") as response:
                assert response.status == 404
        await asyncio.sleep(0.3)  # for the access lines, written at the end of a loop turn
    logged = "".join(served.output)
    token = link.rsplit("/", 1)[1]
    assert token not in logged
    assert auth["Authorization"].split()[1] not in logged
    assert account["auth_token"] not in logged
    return logged.splitlines(), ids, link


async def test_json_logs_are_one_object_a_line_with_the_access_fields(
    env: dict[str, str], tmp_path: Path, media_files: dict[Codec, Path]
) -> None:
    env = {**env, "GATEWAY_LOG_FORMAT": "json"}
    lines, ids, _ = await exercise(env, tmp_path, media_files[Codec.OPUS])
    banner = [line for line in lines if not line.startswith("{")]
    assert banner == [banner[0], "(Press CTRL+C to quit)"]  # printed, not logged
    records: list[dict[str, Any]] = [json.loads(line) for line in lines if line.startswith("{")]
    access = {r["route"]: r for r in records if r["logger"] == "aiohttp.access"}
    issued = access["/v1/Recordings/{sid}/Media"]
    assert issued["status"] == 302
    assert issued["method"] == "GET"
    assert issued["account_sid"] == ids["account"]
    assert issued["recording_sid"] == ids["recording"]
    assert issued["bytes"] > 0
    ranged = access["/media/{token}"]
    assert ranged["status"] == 206
    assert ranged["range"] == "bytes=0-99"
    assert ranged["bytes"] >= 100
    assert ranged["account_sid"] == ids["account"]
    assert ranged["recording_sid"] == ids["recording"]
    assert ranged["user_agent"] == "player/1.0"
    assert ranged["client"] == "127.0.0.1"
    assert access["(no route)"]["status"] == 404
    for record in access.values():
        assert {"time", "level", "pid", "request_id", "duration_ms"} <= set(record)
        assert record["time"].endswith("Z")
    assert len({r["request_id"] for r in access.values()}) == 3
    assert all({"time", "level", "logger", "pid", "message"} <= set(r) for r in records)


async def test_text_access_lines_quote_what_clients_sent(
    env: dict[str, str], tmp_path: Path, media_files: dict[Codec, Path]
) -> None:
    forged = 'evil" request_id=forged account_sid=AC0'
    lines, ids, _ = await exercise(env, tmp_path, media_files[Codec.OPUS], agent=forged)
    (ranged,) = [line for line in lines if '"GET /media/{token}" 206' in line]
    assert f"account_sid={ids['account']} recording_sid={ids['recording']}" in ranged
    assert ' range="bytes=0-99" ' in ranged
    assert '"evil\\" request_id=forged account_sid=AC0"' in ranged  # escaped, one field
    assert ranged.rsplit(" request_id=", 1)[1] != "forged"


async def test_above_info_there_are_no_access_lines(
    env: dict[str, str], tmp_path: Path, media_files: dict[Codec, Path]
) -> None:
    env = {**env, "GATEWAY_LOG_LEVEL": "warning"}
    lines, _, _ = await exercise(env, tmp_path, media_files[Codec.OPUS])
    assert not [line for line in lines if "aiohttp.access" in line]
