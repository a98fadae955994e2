"""The one table of GATEWAY_* settings; nothing else reads the environment."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

from gateway.errors import ConfigError, InvalidParameter
from gateway.hosts import Network, host_patterns, networks, parse_host


def _port(value: str) -> int:
    port = int(value)
    if not 0 <= port <= 65535:
        raise ValueError("must be a port number from 0 to 65535")
    return port


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise ValueError("must be a whole number of at least 1")
    return number


def _seconds(value: str) -> float:
    seconds = float(value)
    if not seconds > 0:
        raise ValueError("must be a number of seconds above 0")
    return seconds


def _database_url(value: str) -> str:
    scheme = urlsplit(value).scheme
    if scheme == "sqlite" and value.startswith("sqlite:///"):
        return value
    if scheme in ("postgresql", "postgres") and urlsplit(value).netloc:
        return value
    raise ValueError("must be sqlite:///path or postgresql://user@host/database")


def _storage_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme == "s3":
        if not parts.netloc:
            raise ValueError("s3:// URLs need a bucket: s3://BUCKET[/PREFIX]")
        return value
    if parts.scheme not in ("", "file"):
        raise ValueError(f"unknown scheme {parts.scheme!r}; use a folder, file:///path or s3://")
    if parts.scheme == "file" and (parts.netloc not in ("", "localhost") or not parts.path):
        # file://var/media would name host "var" (RFC 8089) and lose the folder.
        raise ValueError("file URLs need an absolute path: file:///path")
    return value


def _endpoint_url(value: str) -> str | None:
    if value and urlsplit(value).scheme not in ("http", "https"):
        raise ValueError("must be an http(s) URL")
    return value or None


def _media_mode(value: str) -> str:
    if value not in ("proxy", "presign"):
        raise ValueError("must be proxy or presign")
    return value


def _public_url(value: str) -> str | None:
    if not value:
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("must be an absolute http(s) URL")
    return value.rstrip("/")


_UNITS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _duration(value: str) -> float:
    """Seconds, from "90", "90s", "15m", "12h" or "30d"."""
    number, unit = (value[:-1], value[-1]) if value[-1:] in _UNITS else (value, "s")
    seconds = float(number) * _UNITS[unit]
    if not seconds > 0:
        raise ValueError("must be a duration above 0, such as 90s, 15m, 12h or 30d")
    return seconds


def _duration_or_none(value: str) -> float:
    """A duration, or 0 for none at all."""
    return 0.0 if value in ("0", "0s") else _duration(value)


def _admin_token(value: str) -> str | None:
    if value and len(value) < 16:
        raise ValueError("must be at least 16 characters long")
    return value or None


def _signing_keys(value: str) -> tuple[str, ...]:
    keys = tuple(key.strip() for key in value.split(",") if key.strip())
    if value and not keys:
        raise ValueError("must list one or more secrets separated by commas")
    if any(len(key) < 16 for key in keys):
        raise ValueError("every secret must be at least 16 characters long")
    return keys


def _listen_address(value: str) -> tuple[str, int] | None:
    """HOST:PORT or [IPv6]:PORT to listen on; empty for no listener."""
    if not value:
        return None
    try:
        host, port = parse_host(value)
    except InvalidParameter as exc:
        raise ValueError(exc.problem) from None
    if not port:
        raise ValueError("must be HOST:PORT, such as 127.0.0.1:9464")
    return host.strip("[]"), int(port)


def _origins(value: str) -> tuple[str, ...] | None:
    """`*` for any origin (None), else comma-separated origins, each
    `scheme://host[:port]` as browsers send it in `Origin`; empty for none."""
    if value.strip() == "*":
        return None
    origins = tuple(origin.strip().rstrip("/") for origin in value.split(",") if origin.strip())
    for origin in origins:
        scheme, separator, rest = origin.partition("://")
        if scheme not in ("http", "https") or not separator or not rest or "/" in rest:
            raise ValueError(f"{origin!r} is not an origin such as https://app.example.com")
    return origins


def _one_of(*choices: str) -> Callable[[str], str]:
    def parse(value: str) -> str:
        if value.lower() not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}")
        return value.lower()

    return parse


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
        "GATEWAY_WORKERS",
        "1",
        "Serving processes sharing the port, each with its own event loop and pools: "
        "one per core the instance may use.",
        _positive,
    ),
    Setting(
        "GATEWAY_DATABASE_URL",
        "sqlite:///var/gateway.db",
        "Metadata: sqlite:///relative/path, sqlite:////absolute/path or postgresql://….",
        _database_url,
    ),
    Setting(
        "GATEWAY_STORAGE_URL",
        "var/media",
        "Media: a folder path, file:///absolute/path or s3://BUCKET[/PREFIX].",
        _storage_url,
    ),
    Setting(
        "GATEWAY_S3_ENDPOINT_URL",
        "",
        "S3 endpoint for MinIO, Ceph RGW and the like (default: AWS). Credentials and "
        "region come the standard botocore way (AWS_* variables, profiles, instance roles).",
        _endpoint_url,
    ),
    Setting("GATEWAY_S3_MAX_CONNECTIONS", "64", "Connections in the S3 client's pool.", _positive),
    Setting(
        "GATEWAY_S3_TIMEOUT",
        "10",
        "Seconds to wait for S3 to connect or to send the next bytes before answering 503.",
        _seconds,
    ),
    Setting(
        "GATEWAY_DATABASE_POOL_SIZE",
        "10",
        "Connections each process keeps open to PostgreSQL, plus one for sweeps.",
        _positive,
    ),
    Setting(
        "GATEWAY_DATABASE_TIMEOUT",
        "5s",
        "How long a request waits for the database (a connection, a query, SQLite's "
        "write lock) before it is answered 503 with Retry-After.",
        _duration,
    ),
    Setting(
        "GATEWAY_CREDENTIAL_CACHE",
        "5s",
        "How long each process remembers a credential it has checked, so that an API call "
        "costs one database lookup rather than two; a changed secret is refused "
        "everywhere once it has passed. 0 checks every request.",
        _duration_or_none,
    ),
    Setting(
        "GATEWAY_LOG_FORMAT",
        "text",
        "text: lines as a terminal shows them; json: one object per line, for log "
        "pipelines (the access line's fields included).",
        _one_of("text", "json"),
    ),
    Setting(
        "GATEWAY_LOG_LEVEL",
        "info",
        "debug, info (one access line per request), warning or error.",
        _one_of("debug", "info", "warning", "error"),
    ),
    Setting(
        "GATEWAY_METRICS_ADDRESS",
        "",
        "HOST:PORT of a listener of its own serving Prometheus metrics at /metrics (for "
        "all workers of the instance), such as 127.0.0.1:9464; unset, none is served and "
        "nothing is counted.",
        _listen_address,
    ),
    Setting(
        "GATEWAY_HEADER_TIMEOUT",
        "10s",
        "How long a client may take to send a request's line and headers before the "
        "connection is closed; downloads and uploads are not bounded by it.",
        _duration,
    ),
    Setting(
        "GATEWAY_SHUTDOWN_GRACE",
        "60s",
        "On SIGTERM, how long requests in flight (downloads too) may run before they are cut.",
        _duration,
    ),
    Setting(
        "GATEWAY_MEDIA_MODE",
        "proxy",
        "proxy: /Media redirects to this service's revocable signed link; "
        "presign: to an S3 presigned URL (S3 storage only).",
        _media_mode,
    ),
    Setting(
        "GATEWAY_PUBLIC_URL",
        "",
        "Absolute base URL for every URL the API returns (default: the request's own).",
        _public_url,
    ),
    Setting(
        "GATEWAY_ALLOWED_HOSTS",
        "localhost,127.0.0.1,[::1]",
        "Without GATEWAY_PUBLIC_URL, the Host values (any port) the API builds its URLs "
        "from: exact hosts, *.domain for its subdomains, .domain for it and them, or *; "
        "any other Host is answered 400.",
        host_patterns,
    ),
    Setting(
        "GATEWAY_TRUSTED_PROXIES",
        "",
        "Addresses or CIDRs of the proxies in front (nginx, a load balancer): only from "
        "them are X-Forwarded-For/-Proto/-Host, Forwarded and X-Request-Id believed.",
        networks,
    ),
    Setting(
        "GATEWAY_CORS_ORIGINS",
        "*",
        "Origins whose pages may read media links with fetch, MSE players or a canvas "
        "(CORS): * for any (a link is its own credential), or a comma-separated list "
        "such as https://app.example.com.",
        _origins,
    ),
    Setting(
        "GATEWAY_API_CORS_ORIGINS",
        "",
        "Origins whose pages may call the API under /v1/ (CORS), as for "
        "GATEWAY_CORS_ORIGINS; unset, none: the API takes account secrets and belongs "
        "on servers.",
        _origins,
    ),
    Setting(
        "GATEWAY_DELETED_RETENTION",
        "30d",
        "How long a deleted recording's metadata stays readable before it is purged.",
        _duration,
    ),
    Setting(
        "GATEWAY_JANITOR_INTERVAL",
        "10m",
        "How often each instance tries a janitor sweep (one instance sweeps at a time).",
        _duration,
    ),
    Setting(
        "GATEWAY_CALLBACK_ALLOW",
        "",
        "Hosts status callbacks may call even when they are internal (exact names, "
        "addresses or *.domain); unset, any host whose addresses are all public.",
        host_patterns,
    ),
    Setting("GATEWAY_CALLBACK_TIMEOUT", "10s", "How long a callback receiver may take.", _duration),
    Setting(
        "GATEWAY_CALLBACK_BACKOFF",
        "5s",
        "Wait before a failed callback's first retry; doubled each time, at most an hour.",
        _duration,
    ),
    Setting(
        "GATEWAY_CALLBACK_ATTEMPTS",
        "10",
        "Attempts at one callback before it is abandoned.",
        _positive,
    ),
    Setting(
        "GATEWAY_ADMIN_TOKEN",
        "",
        "Bearer token of the recorder ingestion API under /internal/v1/; "
        "unset, that API does not exist (404).",
        _admin_token,
    ),
    Setting(
        "GATEWAY_SIGNING_KEYS",
        "",
        "Comma-separated media-link secrets; the first signs, all verify. When unset on "
        "SQLite (one instance), one is generated and kept beside the database.",
        _signing_keys,
    ),
)


@dataclass(frozen=True, slots=True)
class Settings:
    """What SETTINGS parse to, one field each; the defaults are the table's alone."""

    host: str
    port: int
    workers: int
    database_url: str
    storage_url: str
    s3_endpoint_url: str | None
    s3_max_connections: int
    s3_timeout: float
    database_pool_size: int
    database_timeout: float
    credential_cache: float
    log_format: str
    log_level: str
    metrics_address: tuple[str, int] | None
    header_timeout: float
    shutdown_grace: float
    media_mode: str
    public_url: str | None
    allowed_hosts: tuple[str, ...]
    trusted_proxies: tuple[Network, ...]
    cors_origins: tuple[str, ...] | None
    api_cors_origins: tuple[str, ...] | None
    deleted_retention: float
    janitor_interval: float
    callback_allow: tuple[str, ...]
    callback_timeout: float
    callback_backoff: float
    callback_attempts: int
    admin_token: str | None
    signing_keys: tuple[str, ...]

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
        settings = cls(**values)
        if settings.media_mode == "presign" and not settings.storage_url.startswith("s3://"):
            raise ConfigError("GATEWAY_MEDIA_MODE=presign needs s3:// GATEWAY_STORAGE_URL")
        return settings

    @property
    def uses_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite:")

    @property
    def sqlite_path(self) -> Path:
        return Path(self.database_url.removeprefix("sqlite:///"))

    @property
    def storage_path(self) -> Path:
        parts = urlsplit(self.storage_url)
        return Path(parts.path if parts.scheme == "file" else self.storage_url)
