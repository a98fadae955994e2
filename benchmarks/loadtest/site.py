"""The shipped nginx site (deploy/nginx.conf), made to run unprivileged on loopback: the
same file with its addresses, ports and certificate paths replaced and nothing else.

Each replacement names the exact line it expects in the shipped site and how many times;
a shipped site that no longer has that line stops the load test, rather than letting it
measure a site other than the one we ship."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Final

SHIPPED: Final = Path(__file__).resolve().parents[2] / "deploy" / "nginx.conf"


class SiteChanged(Exception):
    """The shipped site no longer has a line the load test replaces."""


@dataclass(frozen=True, slots=True)
class Loopback:
    upstreams: tuple[int, ...]  # the gateway instances' ports, in the upstream's order
    http_port: int
    https_port: int
    certificate: Path
    key: Path


@dataclass(frozen=True, slots=True)
class Replacement:
    pattern: str  # a whole line, indentation aside
    times: int
    replace: str | None  # None drops the line


def replacements(loopback: Loopback) -> list[Replacement]:
    https = loopback.https_port
    return [
        # Only loopback, and no IPv6 (the load generator uses 127.0.0.1).
        Replacement(r"listen 80;", 1, f"listen 127.0.0.1:{loopback.http_port};"),
        Replacement(r"listen \[::\]:80;", 1, None),
        Replacement(r"listen 443 ssl http2;", 1, f"listen 127.0.0.1:{https} ssl http2;"),
        Replacement(r"listen \[::\]:443 ssl http2;", 1, None),
        # The redirect to https names the port, now that it is not 443.
        Replacement(
            r"return 301 https://\$host\$request_uri;",
            1,
            f"return 301 https://$host:{https}$request_uri;",
        ),
        # A self-signed certificate made for the run.
        Replacement(
            r"ssl_certificate +/etc/letsencrypt/live/recordings\.example\.com/fullchain\.pem;",
            1,
            f"ssl_certificate     {loopback.certificate};",
        ),
        Replacement(
            r"ssl_certificate_key +/etc/letsencrypt/live/recordings\.example\.com/privkey\.pem;",
            1,
            f"ssl_certificate_key {loopback.key};",
        ),
    ]


UPSTREAM_SERVER: Final = re.compile(r"(\s*)server 10\.0\.0\.\d+:8080( [^;]*)?;")


def loopback_site(shipped: str, loopback: Loopback) -> tuple[str, list[tuple[str, str]]]:
    """The shipped site on loopback, and each line changed as (shipped, now; "" if dropped).
    Raises SiteChanged if a line to replace is not there exactly as often as expected."""
    lines: list[str | None] = list(shipped.splitlines())
    changed: list[tuple[str, str]] = []
    upstreams = [n for n, line in enumerate(lines) if line and UPSTREAM_SERVER.fullmatch(line)]
    if len(upstreams) != len(loopback.upstreams):
        raise SiteChanged(
            f"the shipped upstream lists {len(upstreams)} `server 10.0.0.N:8080` lines, "
            f"not the {len(loopback.upstreams)} instances this load test runs"
        )
    for number, port in zip(upstreams, loopback.upstreams, strict=True):
        match = UPSTREAM_SERVER.fullmatch(lines[number] or "")
        assert match is not None
        now = f"{match[1]}server 127.0.0.1:{port}{match[2] or ''};"
        changed.append((match[0], now))
        lines[number] = now
    for replacement in replacements(loopback):
        pattern = re.compile(r"(\s*)" + replacement.pattern)
        found = [n for n, line in enumerate(lines) if line and pattern.fullmatch(line)]
        if len(found) != replacement.times:
            raise SiteChanged(
                f"expected {replacement.times} line(s) like `{replacement.pattern}` in the "
                f"shipped site, found {len(found)}"
            )
        for number in found:
            match = pattern.fullmatch(lines[number] or "")
            assert match is not None
            now = None if replacement.replace is None else match[1] + replacement.replace
            changed.append((match[0], now or ""))
            lines[number] = now
    return "\n".join(line for line in lines if line is not None) + "\n", changed


MAIN: Final = """\
# nginx for the load test: the shipped site, included as a deployment includes it.
{user}
worker_processes {workers};
worker_rlimit_nofile 8192;
daemon off;
pid {folder}/nginx.pid;
error_log {folder}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log {folder}/access.log;
    client_body_temp_path {folder}/body;
    proxy_temp_path {folder}/proxy;
    fastcgi_temp_path {folder}/fastcgi;
    uwsgi_temp_path {folder}/uwsgi;
    scgi_temp_path {folder}/scgi;
    include {site};
}}
"""


def main_config(folder: Path, site: Path, *, workers: int, as_root: bool) -> str:
    """nginx.conf around the site: every file nginx writes in `folder`. Started as root,
    nginx's workers would become nobody, who may not use those folders: they stay root."""
    return MAIN.format(
        user="user root;" if as_root else "", workers=workers, folder=folder, site=site
    )
