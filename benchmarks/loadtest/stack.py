"""Everything the load test runs against, on loopback: SeaweedFS as the S3 server, a fresh
PostgreSQL database, gateway instances under gunicorn (`gateway serve --workers N`), and
nginx with the shipped site in front, over TLS with a certificate made for the run. Then
the recordings, stored through the gateway's own ways in: `gateway ingest` and the
recorder API."""

from __future__ import annotations

import asyncio
import json
import os
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from aiobotocore.session import get_session
from aiohttp import ClientSession, ClientTimeout, TCPConnector

from benchmarks.harness import (
    Failed,
    Server,
    basic,
    gateway_command,
    nginx_binary,
    seaweedfs_server,
    serving,
    throwaway_database,
)
from benchmarks.loadtest.site import SHIPPED, Loopback, loopback_site, main_config
from gateway.sids import mint
from tests.processes import free_port

BUCKET: Final = "loadtest-media"
SIGNING_KEY: Final = "loadtest-signing-key-0123456789abcdef"
ADMIN_TOKEN: Final = "loadtest-admin-token-0123456789abcdef"
CREDENTIALS: Final = {
    "AWS_ACCESS_KEY_ID": "loadtest",
    "AWS_SECRET_ACCESS_KEY": "loadtest",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@dataclass(frozen=True)
class Instance:
    name: str
    port: int
    metrics: str  # host:port given as GATEWAY_METRICS_ADDRESS
    env: dict[str, str]
    server: Server

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass(frozen=True)
class Stack:
    site: str  # what clients use: https://127.0.0.1:PORT
    plain: str  # the site's http:// side, which only redirects
    ca: Path
    instances: list[Instance]
    nginx: Server
    seaweedfs: Server
    site_changes: list[tuple[str, str]]
    folder: Path

    def cli(self, *args: str) -> Any:
        """A `gateway` command with the first instance's settings: its JSON output."""
        done = subprocess.run(
            [*gateway_command(), *args], env=self.instances[0].env, stdin=subprocess.DEVNULL,
            capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise Failed(f"gateway {' '.join(args)} failed:\n{done.stderr}")
        return json.loads(done.stdout)


def self_signed(folder: Path) -> tuple[Path, Path]:
    certificate, key = folder / "site.crt", folder / "site.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(certificate)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return certificate, key


def gateway_env(
    port: int, metrics: str, database_url: str, endpoint: str, site: str
) -> dict[str, str]:
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    return {
        **inherited,
        **CREDENTIALS,
        "GATEWAY_HOST": "127.0.0.1",
        "GATEWAY_PORT": str(port),
        "GATEWAY_DATABASE_URL": database_url,
        "GATEWAY_STORAGE_URL": f"s3://{BUCKET}",
        "GATEWAY_S3_ENDPOINT_URL": endpoint,
        "GATEWAY_SIGNING_KEYS": SIGNING_KEY,
        "GATEWAY_PUBLIC_URL": site,
        "GATEWAY_TRUSTED_PROXIES": "127.0.0.1",
        "GATEWAY_ADMIN_TOKEN": ADMIN_TOKEN,
        # Served by builds that have it; the others ignore it.
        "GATEWAY_METRICS_ADDRESS": metrics,
        "GATEWAY_SHUTDOWN_GRACE": "5s",
    }


async def make_bucket(endpoint: str) -> None:
    async with get_session().create_client("s3", endpoint_url=endpoint, **_keys()) as client:
        await client.create_bucket(Bucket=BUCKET)


def _keys() -> dict[str, str]:
    return {
        "aws_access_key_id": CREDENTIALS["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        "region_name": CREDENTIALS["AWS_DEFAULT_REGION"],
    }


def wait_ready(instance: Instance, seconds: float = 60) -> None:
    """Until /readyz answers 200: its database and storage both answer."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{instance.base}/readyz", timeout=2) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    raise Failed(f"{instance.name} was not ready within {seconds:g} s:\n{instance.server.tail()}")


@dataclass(frozen=True)
class Site:
    url: str  # https://127.0.0.1:PORT
    plain: str  # its http:// side
    certificate: Path
    server: Server
    changes: list[tuple[str, str]]  # (shipped line, line in the run)


@contextmanager
def nginx_site(folder: Path, upstreams: list[int], nginx_workers: int) -> Iterator[Site]:
    """nginx with the shipped site on loopback, checked by `nginx -t` before it starts."""
    nginx = nginx_binary()
    if nginx is None:
        raise Failed("nginx not found: apt-get install nginx-light")
    folder.mkdir()
    certificate, key = self_signed(folder)
    http_port, https_port = free_port(), free_port()
    loopback = Loopback(tuple(upstreams), http_port, https_port, certificate, key)
    site, changes = loopback_site(SHIPPED.read_text(), loopback)
    (folder / "site.conf").write_text(site)
    conf = folder / "nginx.conf"
    conf.write_text(
        main_config(folder, folder / "site.conf", workers=nginx_workers, as_root=os.geteuid() == 0)
    )
    checked = subprocess.run(
        [nginx, "-t", "-p", str(folder), "-c", str(conf)], capture_output=True, text=True,
        timeout=30, check=False,
    )  # fmt: skip
    if checked.returncode != 0:
        raise Failed(f"nginx refused the generated site:\n{checked.stderr}")
    command = [nginx, "-p", str(folder), "-c", str(conf)]
    with serving("nginx", command, https_port, folder / "nginx.out") as server:
        url, plain = f"https://127.0.0.1:{https_port}", f"http://127.0.0.1:{http_port}"
        yield Site(url, plain, certificate, server, changes)


@contextmanager
def running(
    folder: Path, postgres_dsn: str, *, instances: int, workers: int, nginx_workers: int = 1
) -> Iterator[Stack]:
    with ExitStack() as stack:
        endpoint, seaweedfs = stack.enter_context(seaweedfs_server(folder / "seaweedfs"))
        asyncio.run(make_bucket(endpoint))
        database_url = stack.enter_context(throwaway_database(postgres_dsn, "loadtest"))
        ports = [free_port() for _ in range(instances)]
        site = stack.enter_context(nginx_site(folder / "nginx", ports, nginx_workers))
        started = []
        for number, port in enumerate(ports):
            name = f"gateway {'ABCDEFGH'[number]}"
            metrics = f"127.0.0.1:{free_port()}"
            env = gateway_env(port, metrics, database_url, endpoint, site.url)
            if number == 0:  # migrated once before the instances start together
                subprocess.run(
                    [*gateway_command(), "migrate"], env=env, check=True, capture_output=True,
                    timeout=120,
                )  # fmt: skip
            command = [*gateway_command(), "serve", "--workers", str(workers)]
            log = folder / f"{name.replace(' ', '-')}.log"
            server = stack.enter_context(serving(name, command, port, log, env, seconds=60))
            started.append(Instance(name, port, metrics, env, server))
        for instance in started:
            wait_ready(instance)
        yield Stack(
            site.url, site.plain, site.certificate, started, site.server, seaweedfs,
            site.changes, folder,
        )  # fmt: skip


# ---- the data: an account, recordings to read, recordings to delete ----


@dataclass(frozen=True)
class Data:
    account_sid: str
    authorization: str
    recordings: list[dict[str, Any]]  # sid, size, link: read by seeks and downloads
    deletable: list[dict[str, Any]]  # sid, link


def seed(stack: Stack, media: Path, copies: int, tone: Path, deletable: int) -> Data:
    """`copies` of `media` stored with `gateway ingest`, `deletable` of `tone` handed in
    through the recorder API (to both instances in turn), and a link to each issued
    through the site, as the load's own requests will be."""
    account = stack.cli("accounts", "create", "--name", "Load test")
    sid, token = account["account_sid"], account["auth_token"]
    recordings = []
    for _ in range(copies):
        made = stack.cli("ingest", str(media), "--account", sid, "--track-name", "camera")
        recordings.append({"sid": made["sid"], "size": int(made["size"])})
    authorization = basic(sid, token)
    doomed = asyncio.run(hand_in(stack, sid, tone.read_bytes(), deletable))
    links = asyncio.run(issue_links(stack, authorization, [r["sid"] for r in recordings] + doomed))
    for recording in recordings:
        recording["link"] = links[recording["sid"]]
    return Data(
        sid, authorization, recordings, [{"sid": each, "link": links[each]} for each in doomed]
    )


async def hand_in(stack: Stack, account_sid: str, body: bytes, count: int) -> list[str]:
    turns = asyncio.Semaphore(8)
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}

    async def one(session: ClientSession, number: int) -> str:
        base = stack.instances[number % len(stack.instances)].base + "/internal/v1/Recordings"
        declared = {
            "account_sid": account_sid, "type": "audio", "codec": "OPUS",
            "container_format": "mka", "source_sid": mint("MT"),
            "grouping_sids": {"room_sid": mint("RM"), "participant_sid": mint("PA")},
            "track_name": "microphone", "offset": 0,
        }  # fmt: skip
        async with turns:
            async with session.post(base, json=declared) as answer:
                if answer.status != 201:
                    raise Failed(f"declaring a recording: {answer.status} {await answer.text()}")
                sid = str((await answer.json())["sid"])
            async with session.put(f"{base}/{sid}/Media", data=body) as answer:
                if answer.status >= 300:
                    raise Failed(f"uploading a recording: {answer.status} {await answer.text()}")
            async with session.post(f"{base}/{sid}/Complete") as answer:
                said = await answer.json()
                if answer.status != 200 or said.get("status") != "completed":
                    raise Failed(f"completing a recording: {answer.status} {said}")
            return sid

    timeout = ClientTimeout(total=60)
    async with ClientSession(headers=headers, timeout=timeout) as session:
        return list(await asyncio.gather(*(one(session, n) for n in range(count))))


async def issue_links(stack: Stack, authorization: str, sids: list[str]) -> dict[str, str]:
    turns = asyncio.Semaphore(8)
    context = ssl.create_default_context(cafile=str(stack.ca))

    async def one(session: ClientSession, sid: str) -> tuple[str, str]:
        url = f"{stack.site}/v1/Recordings/{sid}/Media?Ttl=3600"
        async with (
            turns,
            session.get(
                url, headers={"Authorization": authorization}, allow_redirects=False
            ) as answer,
        ):
            said = await answer.json()
            if answer.status != 302:
                raise Failed(f"issuing a link through the site: {answer.status} {said}")
            return sid, str(said["redirect_to"])

    async with ClientSession(connector=TCPConnector(ssl=context)) as session:
        return dict(await asyncio.gather(*(one(session, sid) for sid in sids)))


async def check_redirect(stack: Stack) -> str:
    """The site's http side redirects to its https side, at the https port."""
    async with (
        ClientSession() as session,
        session.get(f"{stack.plain}/healthz", allow_redirects=False) as answer,
    ):
        location = answer.headers.get("Location", "")
        if answer.status != 301 or location != f"{stack.site}/healthz":
            raise Failed(f"the site's http side answered {answer.status} {location}")
        return location
