"""`gateway import twilio` as a team leaving Twilio runs it: a real source speaking the
Recordings API (another `gateway serve`, its own data), the importer as a process, and
this service afterwards answering every stored SID with the same JSON and bytes."""

from __future__ import annotations

import asyncio
import dataclasses
import fcntl
import hashlib
import json
import os
import pty
import re
import struct
import subprocess
import sys
import termios
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientSession, web
from aiohttp.test_utils import TestServer
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.rest import Client

from gateway.config import Settings
from gateway.models import Codec
from gateway.sids import mint
from tests.conftest import ADMIN_TOKEN, SIGNING_KEY, basic_auth
from tests.fault_proxy import FaultProxy, Faults
from tests.integration.test_callbacks import eventually
from tests.processes import Served, free_port, ok, serving
from tests.twilio_standin import TwilioStandIn, encrypt

ROOMS = (mint("RM"), mint("RM"))


@dataclass
class Source:
    served: Served
    account_sid: str
    auth_token: str
    env: dict[str, str]

    @property
    def auth(self) -> dict[str, str]:
        return basic_auth(self.account_sid, self.auth_token)

    @property
    def url(self) -> str:
        return self.served.base_url


@pytest.fixture
def source(tmp_path: Path, media_files: dict[Codec, Path]) -> Iterator[Source]:
    """A source with every codec, every status, two rooms, several participants."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")},
        "GATEWAY_DATABASE_URL": f"sqlite:///{tmp_path}/source/gateway.db",
        "GATEWAY_STORAGE_URL": str(tmp_path / "source" / "media"),
        "GATEWAY_SIGNING_KEYS": SIGNING_KEY,
        "GATEWAY_ADMIN_TOKEN": ADMIN_TOKEN,
    }
    account = ok(env, "accounts", "create", "--name", "At Twilio")
    for room in ROOMS:
        for path in media_files.values():
            ok(env, "ingest", str(path), "--account", account["account_sid"], "--room", room,
               "--participant", mint("PA"))  # fmt: skip
    with serving(env) as served:
        yield Source(served, account["account_sid"], account["auth_token"], env)


async def recorder_step(source: Source, method: str, path: str, **kwargs: Any) -> Any:
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    async with ClientSession(headers=headers) as http:
        url = f"{source.url}/internal/v1/Recordings{path}"
        async with http.request(method, url, **kwargs) as response:
            assert response.status in (200, 201), await response.text()
            return await response.json()


async def start_recording(source: Source) -> str:
    body = {
        "account_sid": source.account_sid, "type": "audio", "codec": "OPUS",
        "container_format": "mka", "source_sid": mint("MT"), "track_name": "mic",
        "grouping_sids": {"room_sid": ROOMS[0], "participant_sid": mint("PA")},
    }  # fmt: skip
    return str((await recorder_step(source, "POST", "", json=body))["sid"])


async def listed(base_url: str, auth: dict[str, str], **query: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    url: str | None = f"{base_url}/v1/Recordings"
    params: dict[str, str] | None = {"PageSize": "50", **query}
    async with ClientSession(headers=auth) as http:
        while url:
            async with http.get(url, params=params) as response:
                assert response.status == 200, await response.text()
                page = await response.json()
            found += page["recordings"]
            url, params = page["meta"]["next_page_url"], None
    return found


async def everything(base_url: str, auth: dict[str, str]) -> dict[str, dict[str, Any]]:
    every: dict[str, dict[str, Any]] = {}
    for status in ("completed", "deleted", "failed", "processing"):
        for recording in await listed(base_url, auth, Status=status):
            every[recording["sid"]] = recording
    return every


def without_urls(recording: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in recording.items() if k not in ("url", "links")}


async def media_digest(base_url: str, auth: dict[str, str], sid: str) -> str:
    async with ClientSession() as http:
        media = f"{base_url}/v1/Recordings/{sid}/Media"
        async with http.get(media, headers=auth, allow_redirects=False) as response:
            assert response.status == 302, await response.text()
            link = (await response.json())["redirect_to"]
        # The link names the serving process's public URL; it is reached directly here.
        path = link[link.index("/media/") :]
        async with http.get(f"{base_url}{path}") as response:
            assert response.status == 200
            return hashlib.sha256(await response.read()).hexdigest()


def run_import(env: dict[str, str], source: Source, *args: str) -> tuple[int, dict[str, Any]]:
    done = subprocess.run(
        [sys.executable, "-m", "gateway", "import", "twilio", "--source-url", source.url,
         "--page-size", "3", *args],
        env={**env, "TWILIO_ACCOUNT_SID": source.account_sid,
             "TWILIO_AUTH_TOKEN": source.auth_token},
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.stdout, done.stderr
    assert source.auth_token not in done.stdout + done.stderr  # secrets never shown
    return done.returncode, json.loads(done.stdout)


@pytest.fixture
async def twilio_here() -> AsyncIterator[AsyncTwilioHttpClient]:
    http_client = AsyncTwilioHttpClient()
    yield http_client
    await http_client.close()


async def test_an_archive_comes_over_with_the_same_sids_json_and_bytes(
    env: dict[str, str], source: Source, twilio_here: AsyncTwilioHttpClient
) -> None:
    before = await everything(source.url, source.auth)
    completed = [sid for sid, r in before.items() if r["status"] == "completed"]
    async with ClientSession(headers=source.auth) as http:
        async with http.delete(f"{source.url}/v1/Recordings/{completed[0]}") as response:
            assert response.status == 204
    failed = await start_recording(source)
    await recorder_step(source, "POST", f"/{failed}/Fail", json={"reason": "recorder crashed"})
    processing = await start_recording(source)
    at_source = await everything(source.url, source.auth)
    assert {r["status"] for r in at_source.values()} == {
        "completed", "deleted", "failed", "processing",
    }  # fmt: skip
    assert len(at_source) > 3 * 3  # more than three pages of three

    status, summary = run_import(env, source)
    assert status == 0, summary
    assert summary["imported"] == len(completed) - 1
    assert summary["metadata_only"] == 2  # the deleted one and the failed one
    assert summary["skipped"] == [{"sid": processing, "reason": "still processing at the source"}]
    assert summary["failed"] == []

    with serving(env) as here:
        imported = await everything(here.base_url, source.auth)
        assert set(imported) == set(at_source) - {processing}
        for sid, recording in imported.items():
            assert without_urls(recording) == without_urls(at_source[sid]), sid
            if recording["status"] == "completed":
                assert await media_digest(here.base_url, source.auth, sid) == await media_digest(
                    source.url, source.auth, sid
                ), sid

        # The official client, pointed here, sees what it saw there, filter by filter.
        clients = []
        for base in (source.url, here.base_url):
            client = Client(source.account_sid, source.auth_token, http_client=twilio_here)
            client.video.base_url = base
            clients.append(client.video.v1.recordings)
        some = at_source[completed[1]]
        for filters in (
            {},
            {"status": "deleted"},
            {"status": "failed"},
            {"grouping_sid": [ROOMS[1]]},
            {"grouping_sid": [some["grouping_sids"]["participant_sid"]]},
            {"source_sid": some["source_sid"]},
            {"media_type": "audio"},
            {"date_created_after": datetime(2020, 1, 1, tzinfo=UTC)},
            {"date_created_before": datetime(2020, 1, 1, tzinfo=UTC)},
        ):
            there, here_listed = [
                {r.sid for r in await listing.list_async(**filters)} for listing in clients
            ]
            # The same set; the order of those created in one second may differ, as the
            # JSON's date_created (all an import has) counts whole seconds.
            assert here_listed == there - {processing}, filters


async def test_running_again_brings_only_what_is_new_or_changed(
    env: dict[str, str], source: Source, media_files: dict[Codec, Path]
) -> None:
    processing = await start_recording(source)
    status, first = run_import(env, source)
    assert (status, first["imported"], len(first["skipped"])) == (0, 2 * len(media_files), 1)

    # Meanwhile at the source: one finishes, one is deleted.
    data = await asyncio.to_thread(media_files[Codec.OPUS].read_bytes)
    await recorder_step(source, "PUT", f"/{processing}/Media", data=data)
    await recorder_step(source, "POST", f"/{processing}/Complete")
    gone = next(sid for sid in await everything(source.url, source.auth) if sid != processing)
    async with ClientSession(headers=source.auth) as http:
        async with http.delete(f"{source.url}/v1/Recordings/{gone}") as response:
            assert response.status == 204

    status, second = run_import(env, source)
    assert status == 0, second
    assert (second["imported"], second["deleted_here"], second["skipped"]) == (1, 1, [])
    assert second["already_here"] == 2 * len(media_files) - 1
    assert second["bytes"] == len(data)
    with serving(env) as here:
        imported = await everything(here.base_url, source.auth)
        assert imported[gone]["status"] == "deleted"
        assert imported[processing]["status"] == "completed"
        assert without_urls(imported[processing]) == without_urls(
            (await everything(source.url, source.auth))[processing]
        )

    status, third = run_import(env, source)
    assert (status, third["imported"], third["deleted_here"]) == (0, 0, 0)


async def test_filters_and_a_dry_run_select_exactly_and_change_nothing(
    env: dict[str, str], source: Source, media_files: dict[Codec, Path]
) -> None:
    in_room = await listed(source.url, source.auth, GroupingSid=ROOMS[1])
    status, dry = run_import(env, source, "--room", ROOMS[1], "--dry-run")
    assert status == 0, dry
    assert dry["dry_run"] is True
    assert dry["imported"] == len(in_room) == len(media_files)
    assert dry["bytes"] == sum(r["size"] for r in in_room)
    with serving(env) as here:
        async with ClientSession() as http:
            url = f"{here.base_url}/v1/Recordings"
            async with http.get(url, headers=source.auth) as response:
                assert response.status == 401  # not even the account came over

    status, done = run_import(env, source, "--room", ROOMS[1], "--media-type", "audio")
    assert status == 0, done
    audio = [r for r in in_room if r["type"] == "audio"]
    assert done["imported"] == len(audio)
    with serving(env) as here:
        imported = await everything(here.base_url, source.auth)
    assert set(imported) == {r["sid"] for r in audio}


def test_bad_arguments_are_refused_naming_them(env: dict[str, str]) -> None:
    for args, named in (
        (["--account-sid", "nope", "--auth-token", "x"], "--account-sid"),
        (["--account-sid", mint("AC")], "--auth-token"),
        (["--account-sid", mint("AC"), "--api-key", mint("SK")], "--api-secret"),
        (["--account-sid", mint("AC"), "--auth-token", "x", "--room", "RM1"], "--room"),
        (["--account-sid", mint("AC"), "--auth-token", "x", "--page-size", "0"], "--page-size"),
    ):
        done = subprocess.run(
            [sys.executable, "-m", "gateway", "import", "twilio", *args],
            env={k: v for k, v in env.items() if not k.startswith("TWILIO_")},
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert done.returncode == 2, done.stderr
        assert named in done.stderr
        assert "Traceback" not in done.stderr


@contextmanager
def proxied(source: Source, faults: Faults) -> Iterator[tuple[Source, FaultProxy]]:
    """The source behind a misbehaving proxy, in a thread of its own."""
    proxy = FaultProxy(source.url, faults)
    port = free_port()
    ready = threading.Event()
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()

    async def main() -> None:
        runner = web.AppRunner(proxy.app(), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        ready.set()
        await stop.wait()
        await runner.cleanup()

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    assert ready.wait(10)
    served = dataclasses.replace(source.served, base_url=f"http://127.0.0.1:{port}")
    try:
        yield dataclasses.replace(source, served=served), proxy
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)
        loop.close()


async def test_rate_limits_errors_and_cut_downloads_end_in_a_complete_import(
    env: dict[str, str], source: Source, media_files: dict[Codec, Path]
) -> None:
    at_source = await everything(source.url, source.auth)
    faults = Faults(rate_limited=2, server_errors=3, cuts=3)
    with proxied(source, faults) as (behind, proxy):
        status, summary = await asyncio.to_thread(run_import, env, behind)
    assert status == 0, summary
    assert (summary["imported"], summary["failed"]) == (len(at_source), [])
    assert proxy.seen == {"429": 2, "500": 3, "cut": 3}
    # Retry-After: 1 was waited for before listing again.
    after_limit = [t for t in proxy.list_times if t > proxy.limited_at[-1]]
    assert after_limit
    assert after_limit[0] - proxy.limited_at[-1] >= 1.0
    # Each cut download went on from where it broke, not from the start.
    assert len(proxy.ranges) == 3
    assert all(r.startswith("bytes=") and r != "bytes=0-" for r in proxy.ranges)
    # The presigned-style link got no credentials.
    assert proxy.authorized_media == 0
    with serving(env) as here:
        imported = await everything(here.base_url, source.auth)
        for sid, recording in at_source.items():
            assert without_urls(imported[sid]) == without_urls(recording)
            assert await media_digest(here.base_url, source.auth, sid) == await media_digest(
                source.url, source.auth, sid
            )


async def test_a_recording_that_keeps_failing_is_reported_and_the_run_goes_on(
    env: dict[str, str], source: Source
) -> None:
    at_source = await everything(source.url, source.auth)
    broken = next(iter(at_source))
    with proxied(source, Faults(always_failing={broken})) as (behind, _):
        status, summary = await asyncio.to_thread(run_import, env, behind)
    assert status == 1
    assert summary["imported"] == len(at_source) - 1
    assert summary["failed"] == [{"sid": broken, "reason": f"{broken}: /Media answered HTTP 500"}]
    with serving(env) as here:
        async with ClientSession(headers=source.auth) as http:
            async with http.get(f"{here.base_url}/v1/Recordings/{broken}") as response:
                assert response.status == 404  # nothing half-imported
    # Once the source is well again, a second run brings just that one.
    status, again = await asyncio.to_thread(run_import, env, source)
    assert (status, again["imported"], again["already_here"]) == (0, 1, len(at_source) - 1)


async def test_a_source_that_is_down_fails_the_run_and_changes_nothing(
    env: dict[str, str], source: Source
) -> None:
    down = dataclasses.replace(
        source,
        served=dataclasses.replace(source.served, base_url=f"http://127.0.0.1:{free_port()}"),
    )
    status, summary = await asyncio.to_thread(run_import, env, down, "--rate", "1000")
    assert status == 1
    assert summary["imported"] == 0
    assert [entry["sid"] for entry in summary["failed"]] == ["(listing)"]
    assert "did not answer" in summary["failed"][0]["reason"]


async def test_an_import_killed_midway_and_run_again_converges(
    env: dict[str, str], source: Source
) -> None:
    at_source = await everything(source.url, source.auth)
    with proxied(source, Faults(media_delay=0.2)) as (behind, proxy):
        importing = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gateway", "import", "twilio", "--source-url", behind.url,
            "--concurrency", "2",
            env={**env, "TWILIO_ACCOUNT_SID": source.account_sid,
                 "TWILIO_AUTH_TOKEN": source.auth_token},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            # Some stored, and one midway (on a local folder, its half-written file there).
            await eventually(lambda: midway(proxy, local_media(env)), 60)
        finally:
            importing.kill()
            await importing.wait()
    if (folder := local_media(env)) is not None:
        stored = await asyncio.to_thread(files_under, folder)
        # A half-written file's name starts with a dot: the kill left some.
        assert [path for path in stored if path.name.startswith(".")] != []
    status, summary = await asyncio.to_thread(run_import, env, source)
    assert status == 0, summary
    # Some came over before the kill, the rest now.
    assert summary["already_here"] > 0, "the kill came too late to test anything"
    assert summary["imported"] > 0
    assert summary["imported"] + summary["already_here"] == len(at_source)
    if (folder := local_media(env)) is not None:
        # The next run for each recording removed what the killed one was writing.
        stored = await asyncio.to_thread(files_under, folder)
        assert [path for path in stored if path.name.startswith(".")] == []
    with serving(env) as here:
        imported = await everything(here.base_url, source.auth)
        assert {sid: without_urls(r) for sid, r in imported.items()} == {
            sid: without_urls(r) for sid, r in at_source.items()
        }
        for sid in imported:  # every medium whole
            assert await media_digest(here.base_url, source.auth, sid) == await media_digest(
                source.url, source.auth, sid
            )


async def midway(proxy: FaultProxy, folder: Path | None) -> bool:
    if proxy.media_sent < 2 or not proxy.media_streaming:
        return False
    if folder is None:
        return True
    stored = await asyncio.to_thread(files_under, folder)
    return any(path.name.startswith(".") for path in stored)


def files_under(folder: Path) -> list[Path]:
    return [path for path in folder.rglob("*") if path.is_file()]


def local_media(env: dict[str, str]) -> Path | None:
    """The media folder of the sqlite+local pair; None on S3."""
    settings = Settings.from_env({k: v for k, v in env.items() if k.startswith("GATEWAY_")})
    return None if settings.storage_url.startswith("s3://") else settings.storage_path


@pytest.fixture(scope="module")
def rsa_keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The account's key pair (Twilio keeps the public key), and another one."""
    folder = tmp_path_factory.mktemp("keys")
    found: dict[str, Any] = {}
    for name in ("right", "wrong"):
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        (folder / f"{name}.pem").write_bytes(pem)
        found[name] = (key, folder / f"{name}.pem")
    return found


async def import_from(url: str, account: str, token: str, env: dict[str, str], *args: str
                      ) -> tuple[int, dict[str, Any], str]:  # fmt: skip
    importing = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway", "import", "twilio", "--source-url", url, *args,
        env={**env, "TWILIO_ACCOUNT_SID": account, "TWILIO_AUTH_TOKEN": token},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(importing.communicate(), 120)
    assert importing.returncode is not None
    return importing.returncode, json.loads(out), err.decode()


@pytest.mark.parametrize("key", ["right", "wrong", None])
async def test_media_twilio_encrypted_with_a_customer_key(
    env: dict[str, str],
    media_files: dict[Codec, Path],
    rsa_keys: dict[str, Any],
    key: str | None,
) -> None:
    plaintext = await asyncio.to_thread(media_files[Codec.OPUS].read_bytes)
    account, token = mint("AC"), "f" * 32
    standin = TwilioStandIn(account, token, encrypt(plaintext, rsa_keys["right"][0].public_key()))
    args = ["--decrypt-key", str(rsa_keys[key][1])] if key else []
    async with TestServer(standin.app(), host="127.0.0.1") as server:
        url = str(server.make_url("")).rstrip("/")
        status, summary, err = await import_from(url, account, token, env, *args)
        expected = standin.recording(url)
    assert token not in err
    assert standin.credentials_sent_to_s3 == 0
    if key == "right":
        assert (status, summary["imported"], summary["failed"]) == (0, 1, [])
    else:
        assert status == 1
        assert summary["imported"] == 0
        (failure,) = summary["failed"]
        assert failure["sid"] == standin.sid
        what = "pass --decrypt-key" if key is None else "encrypted for another key"
        assert what in failure["reason"], failure
        if (folder := local_media(env)) is not None:  # no byte of it stored
            assert await asyncio.to_thread(files_under, folder) == []
    auth = basic_auth(account, token)
    with serving(env) as here:
        async with ClientSession(headers=auth) as http:
            async with http.get(f"{here.base_url}/v1/Recordings/{standin.sid}") as response:
                if key != "right":
                    # Nothing stored for it: not the recording (and the account only as
                    # the credential's).
                    assert response.status == 404
                    return
                imported = await response.json()
        assert without_urls(imported) == {**without_urls(expected), "size": len(plaintext)}
        digest = await media_digest(here.base_url, auth, standin.sid)
    assert digest == hashlib.sha256(plaintext).hexdigest()


def test_on_a_terminal_a_bar_shows_recordings_and_bytes_with_rate_and_eta(
    env: dict[str, str], source: Source
) -> None:
    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 160, 0, 0))
    try:
        done = subprocess.run(
            [sys.executable, "-m", "gateway", "import", "twilio", "--source-url", source.url],
            env={**env, "TWILIO_ACCOUNT_SID": source.account_sid,
                 "TWILIO_AUTH_TOKEN": source.auth_token},
            stdout=subprocess.PIPE, stderr=terminal, text=True, timeout=120, check=False,
        )  # fmt: skip
        os.close(terminal)
        shown = b""
        while True:
            try:
                piece = os.read(controller, 65536)
            except OSError:  # the terminal's other end is closed: all is read
                break
            if not piece:
                break
            shown += piece
    finally:
        os.close(controller)
    assert done.returncode == 0
    summary = json.loads(done.stdout)  # stdout stays one JSON document
    last = shown.decode().replace("\r", "\n").strip().splitlines()[-1]
    total = summary["imported"]
    # tqdm's "{n}/{total} recordings: 100%|…| 84.0k/84.0k [00:01<00:00, 60.1kB/s]"
    assert re.search(rf"{total}/{total} recordings: 100%", last), last
    assert re.search(r"\[\d\d:\d\d<\d\d:\d\d, +[\d.]+\w?B/s\]", last), last
    assert source.auth_token not in shown.decode()


async def test_with_an_api_key_the_account_comes_without_its_token(
    env: dict[str, str], source: Source, media_files: dict[Codec, Path]
) -> None:
    key = ok(source.env, "keys", "create", "--account", source.account_sid)
    done = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway", "import", "twilio", "--source-url", source.url,
        # With "=": a secret may begin with "-", which argparse would take for an option.
        "--account-sid", source.account_sid, "--api-key", key["sid"],
        f"--api-secret={key['secret']}",
        env={k: v for k, v in env.items() if not k.startswith("TWILIO_")},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    out, err = await done.communicate()
    assert done.returncode == 0, err
    assert key["secret"] not in (out + err).decode()
    assert json.loads(out)["imported"] == 2 * len(media_files)
    made_here = ok(env, "keys", "create", "--account", source.account_sid)
    with serving(env) as here:
        async with ClientSession() as http:
            url = f"{here.base_url}/v1/Recordings"
            async with http.get(url, headers=source.auth) as response:
                assert response.status == 401  # the token stayed at the source
            auth = basic_auth(made_here["sid"], made_here["secret"])
            async with http.get(url, headers=auth) as response:
                assert response.status == 200
                assert len((await response.json())["recordings"]) == 2 * len(media_files)


async def test_credentials_the_source_refuses_end_the_run_with_its_answer(
    env: dict[str, str], source: Source
) -> None:
    refused = dataclasses.replace(source, auth_token="0" * 32)
    status, summary = await asyncio.to_thread(run_import, env, refused)
    assert status == 1
    assert summary["imported"] == 0
    (failure,) = summary["failed"]
    assert failure["sid"] == "(listing)"
    assert failure["reason"].startswith("listing recordings: HTTP 401: Authentication Error")
