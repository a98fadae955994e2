"""The one table of GATEWAY_* settings; nothing else reads the environment."""

from __future__ import annotations

import os
import secrets
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

from gateway.errors import ConfigError


def _port(value: str) -> int:
    port = int(value)
    if not 0 <= port <= 65535:
        raise ValueError("must be a port number from 0 to 65535")
    return port


def _database_url(value: str) -> str:
    if not value.startswith("sqlite:///"):
        raise ValueError("must be a sqlite:/// URL")
    return value


def _storage_url(value: str) -> str:
    scheme = urlsplit(value).scheme
    if scheme not in ("", "file"):
        raise ValueError(f"unknown scheme {scheme!r}; use a folder path or file:///path")
    if scheme == "file" and not urlsplit(value).path.startswith("/"):
        raise ValueError("file:// URLs need an absolute path")
    return value


def _public_url(value: str) -> str | None:
    if not value:
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("must be an absolute http(s) URL")
    return value.rstrip("/")


def _signing_keys(value: str) -> tuple[str, ...]:
    keys = tuple(key.strip() for key in value.split(",") if key.strip())
    if value and not keys:
        raise ValueError("must list one or more secrets separated by commas")
    if any(len(key) < 16 for key in keys):
        raise ValueError("every secret must be at least 16 characters long")
    return keys


@dataclass(frozen=True, slots=True)
class Setting:
    name: str
    default: str
    help: str
    parse: Callable[[str], Any]


SETTINGS: Final = (
    Setting("GATEWAY_HOST", "127.0.0.1", "Address to listen on.", str),
    Setting("GATEWAY_PORT", "8080", "Port to listen on.", _port),
    Setting(
        "GATEWAY_DATABASE_URL",
        "sqlite:///var/gateway.db",
        "Metadata store: sqlite:///relative/path or sqlite:////absolute/path.",
        _database_url,
    ),
    Setting(
        "GATEWAY_STORAGE_URL",
        "var/media",
        "Media storage: a folder path or file:///absolute/path.",
        _storage_url,
    ),
    Setting(
        "GATEWAY_PUBLIC_URL",
        "",
        "Absolute base URL for every URL the API returns (default: the request's own).",
        _public_url,
    ),
    Setting(
        "GATEWAY_SIGNING_KEYS",
        "",
        "Comma-separated media-link secrets; the first signs, all verify. "
        "Generated and kept in the database folder when unset on the embedded default.",
        _signing_keys,
    ),
)


@dataclass(frozen=True, slots=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8080
    database_url: str = "sqlite:///var/gateway.db"
    storage_url: str = "var/media"
    public_url: str | None = None
    signing_keys: tuple[str, ...] = ()

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        values = {}
        for setting in SETTINGS:
            raw = env.get(setting.name, setting.default)
            try:
                parsed = setting.parse(raw)
            except ValueError as exc:
                raise ConfigError(f"{setting.name}={raw!r}: {exc}") from None
            values[setting.name.removeprefix("GATEWAY_").lower()] = parsed
        return cls(**values)

    @property
    def sqlite_path(self) -> Path:
        return Path(self.database_url.removeprefix("sqlite:///"))

    @property
    def storage_path(self) -> Path:
        parts = urlsplit(self.storage_url)
        return Path(parts.path if parts.scheme == "file" else self.storage_url)


def signing_keys(settings: Settings) -> tuple[str, ...]:
    """The configured keys, or on the embedded default one kept beside the database."""
    if settings.signing_keys:
        return settings.signing_keys
    key_file = settings.sqlite_path.parent / "signing-key"
    if not key_file.exists():
        key_file.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, stat.S_IRUSR | stat.S_IWUSR)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_urlsafe(32) + "\n")
    return (key_file.read_text().strip(),)
