"""`Settings.from_env`: the one table of GATEWAY_* settings, validated at start-up."""

from __future__ import annotations

import dataclasses
import stat
from pathlib import Path

import pytest

from gateway.config import SETTINGS, Setting, Settings
from gateway.errors import ConfigError
from gateway.signing import signing_keys

KEY_A = "first-signing-key-0123456789"
KEY_B = "second-signing-key-0123456789"


def test_settings_default_to_the_embedded_single_machine_setup() -> None:
    settings = Settings.from_env({})
    assert settings.host == "127.0.0.1"
    assert settings.port == 8080
    assert settings.database_url == "sqlite:///var/gateway.db"
    assert settings.storage_url == "var/media"
    assert settings.public_url is None
    assert settings.signing_keys == ()


def test_settings_read_only_the_given_mapping() -> None:
    assert Settings.from_env({"UNRELATED": "x", "GATEWAY_PORT": "9000"}).port == 9000


@pytest.mark.parametrize(
    ("name", "raw", "field", "expected"),
    [
        ("GATEWAY_HOST", "0.0.0.0", "host", "0.0.0.0"),
        ("GATEWAY_PORT", "0", "port", 0),
        ("GATEWAY_PORT", "65535", "port", 65535),
        ("GATEWAY_DATABASE_URL", "sqlite:////srv/gw.db", "database_url", "sqlite:////srv/gw.db"),
        ("GATEWAY_STORAGE_URL", "/srv/media", "storage_url", "/srv/media"),
        ("GATEWAY_STORAGE_URL", "file:///srv/media", "storage_url", "file:///srv/media"),
        # RFC 8089 §2: "localhost" is the one host a file URI may name.
        (
            "GATEWAY_STORAGE_URL",
            "file://localhost/srv/media",
            "storage_url",
            "file://localhost/srv/media",
        ),
        ("GATEWAY_PUBLIC_URL", "https://rec.example.com", "public_url", "https://rec.example.com"),
        ("GATEWAY_PUBLIC_URL", "http://10.0.0.1:8080", "public_url", "http://10.0.0.1:8080"),
        ("GATEWAY_SIGNING_KEYS", KEY_A, "signing_keys", (KEY_A,)),
        # The first key signs, so the order is kept.
        ("GATEWAY_SIGNING_KEYS", f"{KEY_B},{KEY_A}", "signing_keys", (KEY_B, KEY_A)),
        ("GATEWAY_SIGNING_KEYS", f" {KEY_A} , {KEY_B} ", "signing_keys", (KEY_A, KEY_B)),
        (
            "GATEWAY_ALLOWED_HOSTS",
            "Rec.Example.com, .corp.example,[::1],10.0.0.7",
            "allowed_hosts",
            ("rec.example.com", ".corp.example", "[::1]", "10.0.0.7"),
        ),
        ("GATEWAY_ALLOWED_HOSTS", "*", "allowed_hosts", ("*",)),
        # As GATEWAY_CALLBACK_ALLOW spells a domain's subdomains.
        ("GATEWAY_ALLOWED_HOSTS", "*.corp.example", "allowed_hosts", ("*.corp.example",)),
        (
            "GATEWAY_CALLBACK_ALLOW",
            "::1, Hooks.Example.com",
            "callback_allow",
            ("[::1]", "hooks.example.com"),
        ),
        ("GATEWAY_HEADER_TIMEOUT", "3s", "header_timeout", 3.0),
        ("GATEWAY_DATABASE_TIMEOUT", "500", "database_timeout", 500.0),
        ("GATEWAY_METRICS_ADDRESS", "", "metrics_address", None),
        ("GATEWAY_METRICS_ADDRESS", "127.0.0.1:9464", "metrics_address", ("127.0.0.1", 9464)),
        ("GATEWAY_METRICS_ADDRESS", "[::1]:9464", "metrics_address", ("::1", 9464)),
        ("GATEWAY_METRICS_ADDRESS", "0.0.0.0:9464", "metrics_address", ("0.0.0.0", 9464)),
    ],
)
def test_setting_with_a_valid_value_is_parsed(
    name: str, raw: str, field: str, expected: object
) -> None:
    assert getattr(Settings.from_env({name: raw}), field) == expected


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("GATEWAY_PORT", "abc"),
        ("GATEWAY_PORT", ""),
        ("GATEWAY_PORT", "70000"),
        ("GATEWAY_PORT", "65536"),
        ("GATEWAY_PORT", "-1"),
        ("GATEWAY_DATABASE_URL", "mysql://x"),
        ("GATEWAY_DATABASE_URL", "var/gateway.db"),
        ("GATEWAY_STORAGE_URL", "ftp://x"),
        pytest.param(
            "GATEWAY_STORAGE_URL",
            "file://var/media",
            id="GATEWAY_STORAGE_URL-file-url-with-a-relative-path",
        ),
        ("GATEWAY_PUBLIC_URL", "not-a-url"),
        ("GATEWAY_PUBLIC_URL", "ftp://example.com"),
        ("GATEWAY_PUBLIC_URL", "https://"),
        ("GATEWAY_SIGNING_KEYS", "short"),
        ("GATEWAY_SIGNING_KEYS", f"{KEY_A},short"),
        ("GATEWAY_SIGNING_KEYS", " , "),
        ("GATEWAY_ALLOWED_HOSTS", "rec.example.com:443"),  # hosts, on any port
        ("GATEWAY_ALLOWED_HOSTS", "https://rec.example.com"),
        ("GATEWAY_ALLOWED_HOSTS", "*example.com"),
        ("GATEWAY_ALLOWED_HOSTS", "a.*.example.com"),
        ("GATEWAY_ALLOWED_HOSTS", "[::1"),
        ("GATEWAY_HEADER_TIMEOUT", "0"),
        ("GATEWAY_DATABASE_TIMEOUT", "-1s"),
        ("GATEWAY_METRICS_ADDRESS", "9464"),  # a port alone is no address
        ("GATEWAY_METRICS_ADDRESS", "127.0.0.1"),
        ("GATEWAY_METRICS_ADDRESS", "127.0.0.1:0"),
        ("GATEWAY_METRICS_ADDRESS", "127.0.0.1:65536"),
        ("GATEWAY_METRICS_ADDRESS", "::1:9464"),  # IPv6 goes in brackets
        ("GATEWAY_METRICS_ADDRESS", "http://127.0.0.1:9464"),
    ],
)
def test_setting_with_a_bad_value_stops_start_up_naming_the_variable(name: str, raw: str) -> None:
    with pytest.raises(ConfigError) as excinfo:
        Settings.from_env({name: raw})
    assert name in str(excinfo.value)


@pytest.mark.parametrize(
    ("database_url", "storage_url", "sqlite_path", "storage_path"),
    [
        ("sqlite:///var/gateway.db", "var/media", "var/gateway.db", "var/media"),
        ("sqlite:////srv/gw.db", "/srv/media", "/srv/gw.db", "/srv/media"),
        ("sqlite:////srv/gw.db", "file:///srv/media", "/srv/gw.db", "/srv/media"),
    ],
)
def test_settings_locate_the_database_and_media_on_disk(
    database_url: str, storage_url: str, sqlite_path: str, storage_path: str
) -> None:
    settings = Settings.from_env(
        {"GATEWAY_DATABASE_URL": database_url, "GATEWAY_STORAGE_URL": storage_url}
    )
    assert settings.sqlite_path == Path(sqlite_path)
    assert settings.storage_path == Path(storage_path)


def sqlite_settings(db: Path) -> Settings:
    assert db.is_absolute()
    return Settings.from_env({"GATEWAY_DATABASE_URL": f"sqlite:///{db}"})


def test_signing_keys_configured_are_used_as_given() -> None:
    settings = Settings.from_env({"GATEWAY_SIGNING_KEYS": f"{KEY_A},{KEY_B}"})
    assert signing_keys(settings) == (KEY_A, KEY_B)


def test_signing_key_is_generated_beside_the_database_readable_only_by_its_owner(
    tmp_path: Path,
) -> None:
    settings = sqlite_settings(tmp_path / "gateway.db")
    assert settings.database_url.startswith("sqlite:////")
    keys = signing_keys(settings)
    key_file = tmp_path / "signing-key"
    assert key_file.is_file()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert len(keys) == 1
    assert keys[0] == key_file.read_text().strip()
    # A generated key must pass the rule configured keys are held to.
    assert Settings.from_env({"GATEWAY_SIGNING_KEYS": keys[0]}).signing_keys == keys


def test_signing_key_generated_once_is_reused(tmp_path: Path) -> None:
    first = signing_keys(sqlite_settings(tmp_path / "gateway.db"))
    again = signing_keys(sqlite_settings(tmp_path / "gateway.db"))
    assert again == first


def test_signing_keys_of_two_databases_differ(tmp_path: Path) -> None:
    one = signing_keys(sqlite_settings(tmp_path / "one" / "gateway.db"))
    two = signing_keys(sqlite_settings(tmp_path / "two" / "gateway.db"))
    assert one != two


def test_signing_key_folder_is_created_when_missing(tmp_path: Path) -> None:
    signing_keys(sqlite_settings(tmp_path / "not" / "yet" / "gateway.db"))
    assert (tmp_path / "not" / "yet" / "signing-key").is_file()


@pytest.mark.parametrize("setting", SETTINGS, ids=[setting.name for setting in SETTINGS])
def test_every_setting_is_documented(setting: Setting) -> None:
    assert setting.name.startswith("GATEWAY_")
    assert setting.help.strip()


def test_every_settings_field_has_exactly_one_setting() -> None:
    names = [setting.name.removeprefix("GATEWAY_").lower() for setting in SETTINGS]
    assert sorted(names) == sorted(field.name for field in dataclasses.fields(Settings))


@pytest.mark.parametrize("document", ["README.md", "deploy/gateway.env.example"])
def test_every_setting_is_documented_for_operators(document: str) -> None:
    text = (Path(__file__).resolve().parents[2] / document).read_text()
    assert [s.name for s in SETTINGS if s.name not in text] == []


@pytest.mark.parametrize(
    ("raw", "seconds"),
    [("90", 90.0), ("90s", 90.0), ("15m", 900.0), ("12h", 43200.0), ("30d", 2592000.0)],
)
def test_durations_take_a_unit(raw: str, seconds: float) -> None:
    assert Settings.from_env({"GATEWAY_DELETED_RETENTION": raw}).deleted_retention == seconds


@pytest.mark.parametrize("raw", ["0", "-5m", "soon", "10w", ""])
def test_bad_duration_stops_start_up_naming_the_variable(raw: str) -> None:
    with pytest.raises(ConfigError, match="GATEWAY_JANITOR_INTERVAL"):
        Settings.from_env({"GATEWAY_JANITOR_INTERVAL": raw})
