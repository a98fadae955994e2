"""The `gateway` command as an operator runs it: a real process, JSON out, exit 2 on error."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.config import Settings
from gateway.models import Codec
from gateway.store.schema import MIGRATIONS
from tests.backends import stored
from tests.conftest import basic_auth
from tests.media import require_ffmpeg, write_mp3_in_matroska
from tests.processes import Served, ok, refused, serving
from tests.schema import validate


def nothing_stored(env: dict[str, str]) -> bool:
    return stored(Settings.from_env(env)) == []


@pytest.fixture
def account(env: dict[str, str]) -> dict[str, str]:
    return ok(env, "accounts", "create", "--name", "Ops")  # type: ignore[return-value]


def test_accounts_create_prints_sid_and_token(account: dict[str, str]) -> None:
    assert set(account) == {"account_sid", "auth_token"}
    assert account["account_sid"].startswith("AC")
    assert len(account["account_sid"]) == 34
    assert len(account["auth_token"]) == 32


def test_keys_create_prints_sid_and_secret(env: dict[str, str], account: dict[str, str]) -> None:
    key = ok(env, "keys", "create", "--account", account["account_sid"])
    assert set(key) == {"sid", "secret"}
    assert str(key["sid"]).startswith("SK")


def test_keys_create_for_unknown_account_is_refused(env: dict[str, str]) -> None:
    assert "AC" in refused(env, "keys", "create", "--account", "AC" + "0" * 32)


def test_ingest_prints_the_recording_as_the_api_shows_it(
    env: dict[str, str], account: dict[str, str], media_files: dict[Codec, Path]
) -> None:
    room, participant, track = "RM" + "1" * 32, "PA" + "2" * 32, "MT" + "3" * 32
    for codec, path in media_files.items():
        printed = ok(
            env, "ingest", str(path), "--account", account["account_sid"], "--room", room,
            "--participant", participant, "--source-sid", track, "--track-name", "mic",
            "--offset", "1500", "--codec", codec.value,
        )  # fmt: skip
        validate(printed, "/v1/Recordings/{Sid}")
        assert printed["codec"] == codec.value
        assert printed["status"] == "completed"
        assert printed["size"] == path.stat().st_size
        assert printed["grouping_sids"] == {"room_sid": room, "participant_sid": participant}
        assert (printed["source_sid"], printed["track_name"], printed["offset"]) == (
            track, "mic", 1500
        )  # fmt: skip
        assert printed["url"] == f"https://recordings.example.com/v1/Recordings/{printed['sid']}"


def test_ingest_refuses_a_file_that_is_not_matroska_and_stores_nothing(
    env: dict[str, str], account: dict[str, str], tmp_path: Path
) -> None:
    text = tmp_path / "notes.mka"
    text.write_text("not media\n")
    assert "Matroska" in refused(env, "ingest", str(text), "--account", account["account_sid"])
    assert nothing_stored(env)


def test_ingest_refuses_an_unsupported_codec_and_stores_nothing(
    env: dict[str, str], account: dict[str, str], tmp_path: Path
) -> None:
    require_ffmpeg()
    mp3 = tmp_path / "music.mka"
    write_mp3_in_matroska(mp3)
    message = refused(env, "ingest", str(mp3), "--account", account["account_sid"])
    assert "mp3" in message
    assert "VP8, H264, OPUS, PCMU" in message
    assert nothing_stored(env)


def test_ingest_refuses_a_codec_other_than_declared(
    env: dict[str, str], account: dict[str, str], media_files: dict[Codec, Path], tmp_path: Path
) -> None:
    args = ("ingest", str(media_files[Codec.OPUS]), "--account", account["account_sid"])
    assert "PCMU" in refused(env, *args, "--codec", "PCMU")
    assert "room" in refused(env, *args, "--room", "RM-not-a-sid")
    assert "no such file" in refused(env, "ingest", "/nonexistent.mka", "--account", "AC1")
    assert nothing_stored(env)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("GATEWAY_PORT", "eighty"),
        ("GATEWAY_PORT", "70000"),
        ("GATEWAY_DATABASE_URL", "mysql://db/gateway"),
        ("GATEWAY_STORAGE_URL", "ftp://files/media"),
        ("GATEWAY_PUBLIC_URL", "recordings.example.com"),
        ("GATEWAY_SIGNING_KEYS", "short"),
    ],
)
def test_malformed_setting_stops_with_one_line_naming_it(
    env: dict[str, str], variable: str, value: str
) -> None:
    for command in (("serve",), ("accounts", "create")):
        assert variable in refused({**env, variable: value}, *command)


def test_migrate_creates_the_schema_and_is_safe_to_repeat(env: dict[str, str]) -> None:
    assert ok(env, "migrate") == {"schema_version": len(MIGRATIONS)}
    assert ok(env, "migrate") == {"schema_version": len(MIGRATIONS)}


def test_callbacks_list_shows_deliveries(env: dict[str, str]) -> None:
    assert ok(env, "callbacks", "list") == []
    assert ok(env, "callbacks", "list", "--recording", "RT" + "0" * 32) == []


def test_purge_runs_one_janitor_sweep(env: dict[str, str]) -> None:
    assert ok(env, "purge") == {"ran": True, "media_deleted": 0, "media_failed": 0, "purged": 0}


def test_shared_database_without_signing_keys_stops_start_up(env: dict[str, str]) -> None:
    shared = {**env, "GATEWAY_DATABASE_URL": "postgresql://gateway@db.internal/gateway"}
    del shared["GATEWAY_SIGNING_KEYS"]
    assert "GATEWAY_SIGNING_KEYS" in refused(shared, "serve")


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    """`gateway serve --demo` as `make run` starts it, in a fresh folder."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    with serving(env, "--demo", cwd=tmp_path) as started:
        yield started


def test_serve_demo_prints_credentials_and_a_working_curl_line(
    served: Served, tmp_path: Path
) -> None:
    base, lines = served.base_url, served.printed
    text = "".join(lines)
    account_sid = text.split("Demo account: ")[1].split()[0]
    auth_token = text.split("Auth token:")[1].split()[0]
    curl = next(line for line in lines if line.strip().startswith("curl -L"))
    media_url = curl.rsplit("'", 2)[1]
    assert media_url.startswith(f"{base}/v1/Recordings/RT")
    request = urllib.request.Request(media_url, headers=basic_auth(account_sid, auth_token))
    with urllib.request.urlopen(request, timeout=10) as response:
        body = response.read()
    assert body[:4] == b"\x1a\x45\xdf\xa3"  # the EBML magic that opens every Matroska file
    assert (tmp_path / "var" / "gateway.db").is_file()
    key_file = tmp_path / "var" / "signing-key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    listing = urllib.request.Request(
        f"{base}/v1/Recordings", headers=basic_auth(account_sid, auth_token)
    )
    with urllib.request.urlopen(listing, timeout=10) as response:
        recordings = json.load(response)["recordings"]
    assert {r["codec"] for r in recordings} == {"OPUS", "VP8"}
    unauthenticated = urllib.request.Request(f"{base}/v1/Recordings")
    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(unauthenticated, timeout=10)
    assert raised.value.code == 401
    raised.value.close()


def test_commands_that_issue_no_links_need_no_signing_keys_and_write_none(
    env: dict[str, str], tmp_path: Path, media_files: dict[Codec, Path]
) -> None:
    """Only `serve` issues media links; on PostgreSQL the others run without
    GATEWAY_SIGNING_KEYS, and on SQLite none of them writes the generated key file."""
    env = {k: v for k, v in env.items() if k != "GATEWAY_SIGNING_KEYS"}
    account = ok(env, "accounts", "create")["account_sid"]
    made = ok(env, "ingest", str(media_files[Codec.OPUS]), "--account", account)
    assert ok(env, "purge")["ran"] is True
    assert ok(env, "recordings", "delete", "--account", account, "--yes") == {"deleted": 1}
    assert ok(env, "callbacks", "list", "--recording", made["sid"]) == []
    assert ok(env, "migrate")["schema_version"] == len(MIGRATIONS)
    settings = Settings.from_env(env)
    if settings.uses_sqlite:
        assert not (settings.sqlite_path.parent / "signing-key").exists()
