"""Issuing media links and following them through `gateway serve`, against bare anchors.

    python benchmarks/hot_path.py [--duration 5] [--rounds 3] [--connections 64]
        [--threads 2] [--warmup 1] [--size-mib 64] [--only issuance,range,download]
        [--postgres-url DSN | --no-postgres] [--revisions REV[,REV...]]

Everything runs on loopback: the shipped `gateway serve` (uvloop) and each anchor as
processes on CPU 0, one of them under load at a time, and wrk on CPU 1. Workloads:
a. issuance, GET /v1/Recordings/{Sid}/Media with Basic auth answered 302, against a bare
   aiohttp + uvloop app answering the same 302 as a constant;
b. 1 KiB ranges of a signed media link answered 206, against a bare aiohttp + uvloop app
   answering each with one os.pread, and against nginx serving the same file behind
   secure_link;
c. whole downloads of a freshly ingested ~64 MiB VP8 recording over 4 connections,
   against that nginx.
Once with SQLite metadata, then with PostgreSQL metadata in a throwaway database (where
nginx, which uses no database, is not measured on ranges again). The rounds alternate
which target goes first; each round's own gateway/anchor ratio shows how much of a
difference is noise. A target that answers an error during a timed run fails the run.
--revisions be31cba,HEAD~3 measures those revisions' gateways too, side by side, each from a
temporary git worktree as `gateway@REV` with its own data, the rounds rotating who goes first.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import uvloop
from aiohttp import ClientSession, ClientTimeout, web

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.harness import (
    PROBLEM,
    WARNING,
    Failed,
    LogWatch,
    Server,
    basic,
    create_database,
    drop_database,
    gateway_command,
    machine,
    nginx_binary,
    nginx_version,
    serving,
    stop_on_sigterm,
)
from benchmarks.request_cost import anchor_app
from gateway.api.query import MAX_TTL
from tests.processes import free_port

REPOSITORY: Final = Path(__file__).resolve().parents[1]
MIB: Final = 1024 * 1024
RANGE_BYTES: Final = 1024
DOWNLOAD_CONNECTIONS: Final = 4
SIGNING_KEY: Final = "benchmark-signing-key-0123456789"
NGINX_SECRET: Final = "benchmark-nginx-secret"
WRK_SCRIPT: Final = Path(__file__).with_name("wrk_summary.lua")
WORKLOADS: Final = ("issuance", "range", "download")
INSTALL: Final = "sudo apt-get install nginx-light wrk"
# Noise defeats the encoder, so a few seconds of it make a large file quickly.
NOISE: Final = "testsrc2=size=1280x720:rate=30,noise=alls=100:allf=t"
# The status and bytes sent of an access-log line, the gateway's and nginx's alike.
ACCESS_STATUS: Final = re.compile(r'"(?:GET|HEAD) [^"]*" (\d{3}) (\d+) ')


# ---- anchors: the least a server on aiohttp + uvloop can do for each request ----


def serve_anchor(kind: str, port: int, link: str, media: str) -> None:
    app = anchor_app("issuance" if kind == "redirect" else "range", link, media)
    web.run_app(
        app,
        host="127.0.0.1",
        port=port,
        access_log=None,
        print=None,
        shutdown_timeout=1,
        loop=uvloop.new_event_loop(),
    )


# ---- processes ----


def pinned(cpu: int | None) -> list[str]:
    return [] if cpu is None else ["taskset", "-c", str(cpu)]


# ---- the gateway, set up with its own commands ----


def gateway_env(database_url: str, folder: Path, port: int) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("GATEWAY_")}
    return {
        **env,
        "GATEWAY_HOST": "127.0.0.1",
        "GATEWAY_PORT": str(port),
        "GATEWAY_DATABASE_URL": database_url,
        "GATEWAY_STORAGE_URL": f"file://{folder / 'media'}",
        "GATEWAY_SIGNING_KEYS": SIGNING_KEY,
        "GATEWAY_SHUTDOWN_GRACE": "5s",
    }


@dataclass(frozen=True)
class Gateway:
    """A version of the gateway: the working tree's as installed, or a revision's, checked
    out in a worktree of its own and run from there with PYTHONPATH."""

    name: str  # its target's
    tree: Path | None = None
    commit: str = ""

    def command(self) -> list[str]:
        return gateway_command() if self.tree is None else [sys.executable, "-m", "gateway"]

    def env(self, database_url: str, folder: Path, port: int) -> dict[str, str]:
        env = gateway_env(database_url, folder, port)
        if self.tree is not None:
            env["PYTHONPATH"] = str(self.tree)
        return env

    def cli(self, env: dict[str, str], *args: str) -> Any:
        # A revision's runs in its own tree: `python -m` puts the current directory first
        # on sys.path, where the working tree's package would shadow the revision's.
        done = subprocess.run(
            [*self.command(), *args],
            env=env,
            cwd=self.tree,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if done.returncode != 0:
            raise Failed(f"{self.name} {' '.join(args)} failed:\n{done.stderr}")
        return json.loads(done.stdout)


WORKING_TREE: Final = Gateway("gateway")


def git(*args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(REPOSITORY), *args], stdin=subprocess.DEVNULL, capture_output=True,
        text=True, timeout=300, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise Failed(f"git {' '.join(args)} failed:\n{done.stderr.strip()}")
    return done.stdout.strip()


@contextmanager
def checked_out(revisions: list[str]) -> Iterator[list[Gateway]]:
    """Each revision's gateway in a temporary worktree of this repository, until the block
    ends, however it ends; checked to import from there despite the editable install."""
    if not revisions:
        yield []
        return
    parent = Path(tempfile.mkdtemp(prefix="hot-path-revisions-"))
    trees: list[Path] = []
    try:
        gateways = []
        for number, revision in enumerate(revisions):
            try:
                commit = git("rev-parse", "--verify", "--quiet", f"{revision}^{{commit}}")
            except Failed:
                raise Failed(f"--revisions: {revision} is no commit of {REPOSITORY}") from None
            tree = parent / f"{number}-{commit[:12]}"
            trees.append(tree)
            git("worktree", "add", "--detach", str(tree), commit)
            gateway = Gateway(f"gateway@{revision}", tree, commit)
            env = {**os.environ, "PYTHONPATH": str(tree)}
            done = subprocess.run(
                [sys.executable, "-c", "import gateway; print(gateway.__file__)"], env=env,
                cwd=tree, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                timeout=60, check=False,
            )  # fmt: skip
            found = done.stdout.strip()
            wanted = tree / "gateway" / "__init__.py"
            if done.returncode != 0 or not found or Path(found).resolve() != wanted.resolve():
                raise Failed(
                    f"{gateway.name}: with PYTHONPATH={tree}, `import gateway` finds "
                    f"{found or done.stderr.strip()!r}, not {wanted}: something (the editable "
                    "install of the working tree?) shadows the revision's package"
                )
            print(f"{gateway.name} is {commit[:12]}, checked out in {tree}")
            gateways.append(gateway)
        yield gateways
    finally:
        for tree in trees:
            try:
                if tree.exists():
                    git("worktree", "remove", "--force", str(tree))
            except Failed as failed:
                print(f"hot_path: could not remove the worktree {tree}: {failed}", file=sys.stderr)
        shutil.rmtree(parent, ignore_errors=True)


def vp8_recording(path: Path, size: int) -> None:
    """A noisy VP8 Matroska file of at least `size` bytes; ffmpeg's -fs stops it there."""
    seconds = size / (4 * MIB)  # far longer than needed: the size limit ends it
    for _ in range(3):
        subprocess.run(
            ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i", NOISE,
             "-t", f"{seconds:.2f}", "-fs", str(size), "-an", "-c:v", "libvpx",
             "-deadline", "realtime", "-cpu-used", "8", "-b:v", "50M", "-qmin", "0",
             "-qmax", "8", "-threads", "2", str(path)],
            stdin=subprocess.DEVNULL, check=True, timeout=1800,
        )  # fmt: skip
        if path.stat().st_size >= size:
            return
        seconds *= 2
    raise Failed(f"ffmpeg made only {path.stat().st_size} bytes of the {size} asked for")


async def issue_link(base: str, sid: str, authorization: str, ttl: int) -> str:
    async with (
        ClientSession() as session,
        session.get(
            f"{base}/v1/Recordings/{sid}/Media",
            params={"Ttl": str(ttl)},
            headers={"Authorization": authorization},
            allow_redirects=False,
        ) as response,
    ):
        body = await response.text()
        if response.status != 302:
            raise Failed(f"issuing a media link: {response.status} {body}")
        return str(json.loads(body)["redirect_to"])


# ---- nginx ----

NGINX_CONF = """
{user}
worker_processes 1;
{affinity}
daemon off;
pid {folder}/nginx.pid;
error_log {folder}/error.log;
events {{ worker_connections 1024; }}
http {{
    access_log {folder}/access.log;
    client_body_temp_path {folder}/body;
    proxy_temp_path {folder}/proxy;
    fastcgi_temp_path {folder}/fastcgi;
    uwsgi_temp_path {folder}/uwsgi;
    scgi_temp_path {folder}/scgi;
    sendfile on;
    tcp_nopush on;
    server {{
        listen 127.0.0.1:{port};
        location /files/ {{
            alias {media}/;
            types {{ }}
            default_type video/webm;
            secure_link $arg_md5,$arg_expires;
            secure_link_md5 "$secure_link_expires$uri {secret}";
            if ($secure_link = "") {{ return 403; }}
            if ($secure_link = "0") {{ return 410; }}
        }}
    }}
}}
"""


def secure_link(uri: str, expires: int) -> str:
    """`uri` signed as secure_link_md5 above checks it: base64url of the raw MD5, unpadded."""
    digest = hashlib.md5(f"{expires}{uri} {NGINX_SECRET}".encode()).digest()
    md5 = base64.urlsafe_b64encode(digest).decode().rstrip("=")
    return f"{uri}?md5={md5}&expires={expires}"


@contextmanager
def nginx(folder: Path, media: Path, cpu: int | None) -> Iterator[tuple[str, Server]]:
    folder.mkdir()
    port = free_port()
    conf = folder / "nginx.conf"
    affinity = "" if cpu is None else f"worker_cpu_affinity {1 << cpu:b};"
    # Started as root, nginx's worker would become nobody, who may not read the temp dirs.
    user = "user root;" if os.geteuid() == 0 else ""
    conf.write_text(
        NGINX_CONF.format(
            user=user, affinity=affinity, folder=folder, port=port, media=media, secret=NGINX_SECRET
        )
    )
    command = [*pinned(cpu), nginx_binary() or "nginx", "-p", str(folder), "-c", str(conf)]
    with serving("nginx", command, port, folder / "nginx.out") as server:
        yield f"http://127.0.0.1:{port}", server


# ---- measuring ----


@dataclass
class Target:
    name: str
    url: str
    server: Server
    headers: dict[str, str] = field(default_factory=dict)
    # Where its access lines and its complaints go, when it writes them.
    access: LogWatch | None = None
    complaints: LogWatch | None = None


@dataclass
class Run:
    requests: int
    bytes: int
    seconds: float
    p99_ms: float
    server_cpu: float  # seconds
    wrk_cpu: float

    def rate(self, unit: str) -> float:
        return (self.bytes / 1e6 if unit == "MB/s" else self.requests) / self.seconds


@dataclass
class Workload:
    key: str
    title: str
    unit: str
    status: int
    connections: int
    targets: list[Target]
    check: Callable[[Target], Any]  # a coroutine function: one request, checked
    runs: dict[str, list[Run]] = field(default_factory=dict)
    # Per target, the statuses logged for requests cut off as wrk stopped, never sent.
    unsent: dict[str, Counter[int]] = field(default_factory=dict)


def wrk(target: Target, connections: int, seconds: int, threads: int, cpu: int | None) -> Run:
    command = [
        *pinned(cpu), "wrk", "-t", str(min(threads, connections)), "-c", str(connections),
        "-d", f"{seconds}s", "--timeout", "30s", "-s", str(WRK_SCRIPT),
    ]  # fmt: skip
    for name, value in target.headers.items():
        command += ["-H", f"{name}: {value}"]
    command.append(target.url)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    server_cpu = target.server.cpu_seconds()
    done = subprocess.run(
        command, stdin=subprocess.DEVNULL, capture_output=True, text=True,
        timeout=seconds + 60, check=False,
    )  # fmt: skip
    server_cpu = target.server.cpu_seconds() - server_cpu
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    wrk_cpu = after.ru_utime + after.ru_stime - children.ru_utime - children.ru_stime
    lines = [line for line in done.stdout.splitlines() if line.startswith("WRK_SUMMARY ")]
    if done.returncode != 0 or not lines:
        raise Failed(f"wrk against {target.name} failed:\n{done.stdout}{done.stderr}")
    summary = json.loads(lines[-1].removeprefix("WRK_SUMMARY "))
    errors = {name: count for name, count in summary["errors"].items() if count}
    if errors:
        raise Failed(
            f"{target.name} answered errors during a timed run: {errors}\n{done.stdout}"
            f"{target.name}'s log ends:\n{target.server.tail()}"
        )
    return Run(
        requests=summary["requests"],
        bytes=summary["bytes"],
        seconds=summary["duration_us"] / 1e6,
        p99_ms=summary["latency_p99_us"] / 1000,
        server_cpu=server_cpu,
        wrk_cpu=wrk_cpu,
    )


def check_logs(target: Target, status: int, connections: int) -> Counter[int]:
    """The statuses the target logged for requests it sent nothing to, which wrk left
    unanswered as it stopped (nginx's 499); fails if it logged an error, or another
    status than `status` for a request it did answer."""
    time.sleep(0.2)  # the last answers' lines
    unsent: Counter[int] = Counter()
    if target.access is not None:
        statuses: Counter[int] = Counter()
        odd = []
        for line in target.access.read():
            if match := ACCESS_STATUS.search(line):
                code, sent = int(match[1]), int(match[2])
                statuses[code] += 1
                if code != status and sent == 0:
                    unsent[code] += 1
                elif code != status:
                    odd.append(line)
        if sum(unsent.values()) > connections:
            odd.append(f"... and {unsent} answers with no bytes sent, more than wrk had open")
        if odd:
            shown = "\n".join(odd[:5])
            raise Failed(
                f"{target.name} answered {len(odd)} times otherwise than {status} (and "
                f"{statuses[status]} times {status}), as its log shows:\n{shown}"
            )
    if target.complaints is not None:
        lines = target.complaints.read()
        problems = [line for line in lines if PROBLEM.search(line)]
        warnings = [line for line in lines if WARNING.search(line)]
        for line in warnings[:5]:
            print(f"    {target.name} warned: {line}")
        if problems:
            shown = "\n".join(problems[:20])
            raise Failed(f"{target.name} logged {len(problems)} error lines:\n{shown}")
    return unsent


def measure(workload: Workload, args: argparse.Namespace, wrk_cpu: int | None) -> None:
    for target in workload.targets:
        try:
            asyncio.run(workload.check(target))
        except Failed as failed:
            raise Failed(f"{workload.key}: {target.name}: {failed}") from None

    def timed(target: Target, seconds: int) -> Run:
        for log in (target.access, target.complaints):
            if log is not None:
                log.skip()
        run = wrk(target, workload.connections, seconds, args.threads, wrk_cpu)
        unsent = check_logs(target, workload.status, workload.connections)
        workload.unsent.setdefault(target.name, Counter()).update(unsent)
        return run

    if args.warmup > 0:
        for target in workload.targets:
            timed(target, args.warmup)
    for number in range(args.rounds):
        if args.revisions:  # each target first in turn
            turn = number % len(workload.targets)
            order = workload.targets[turn:] + workload.targets[:turn]
        else:
            order = workload.targets if number % 2 == 0 else workload.targets[::-1]
        shown = []
        for target in order:
            run = timed(target, args.duration)
            workload.runs.setdefault(target.name, []).append(run)
            rate = run.rate(workload.unit)
            shown.append(f"{target.name} {rate:,.0f} {workload.unit} (p99 {run.p99_ms:.1f} ms)")
        print(f"    round {number + 1}: " + ", ".join(shown), flush=True)


def is_gateway(name: str) -> bool:
    """Whether a target is a version of the gateway: the working tree's, or a revision's."""
    return name == WORKING_TREE.name or name.startswith(f"{WORKING_TREE.name}@")


def report(backend: str, workload: Workload, args: argparse.Namespace) -> None:
    unit = workload.unit
    print(
        f"\n{backend} · {workload.title} · {workload.connections} connections, "
        f"{args.rounds} rounds of {args.duration} s"
    )
    width = max(22, *(len(name) for name in workload.runs))
    print(
        f"  {'':{width}} {'median':>12} {'':5} {'p99 (median)':>12}  {'server CPU':>10}"
        f"  {'wrk CPU':>7}"
    )
    medians = {}
    for name, runs in workload.runs.items():
        medians[name] = statistics.median(run.rate(unit) for run in runs)
        p99 = statistics.median(run.p99_ms for run in runs)
        busy = statistics.median(run.server_cpu / run.seconds for run in runs)
        driver = statistics.median(run.wrk_cpu / run.seconds for run in runs)
        print(
            f"  {name:{width}} {medians[name]:12,.1f} {unit:5} {p99:9.2f} ms"
            f"  {busy:10.0%}  {driver:7.0%}"
        )
    gateways = [name for name in workload.runs if is_gateway(name)]
    anchors = [name for name in workload.runs if not is_gateway(name)]
    # Each gateway against each anchor, then the working tree's against each revision's.
    pairs = [(gateway, anchor) for gateway in gateways for anchor in anchors]
    pairs += [(WORKING_TREE.name, older) for older in gateways if older != WORKING_TREE.name]
    for numerator, denominator in pairs:
        paired = [
            n.rate(unit) / d.rate(unit)
            for n, d in zip(workload.runs[numerator], workload.runs[denominator], strict=True)
        ]
        print(
            f"  {numerator} / {denominator}: {medians[numerator] / medians[denominator]:.3f} "
            f"of medians; each round: {' '.join(f'{ratio:.3f}' for ratio in paired)}"
        )
    for gateway in gateways:
        runs = workload.runs[gateway]
        cpu, requests = sum(run.server_cpu for run in runs), sum(run.requests for run in runs)
        if unit == "MB/s":
            gib = sum(run.bytes for run in runs) / 1024 / MIB
            print(
                f"  {gateway} CPU: {cpu:.1f} s for {gib:.1f} GiB in the timed runs, "
                f"{cpu / gib:.2f} s a GiB"
            )
        elif requests:
            print(
                f"  {gateway} CPU: {cpu:.1f} s over {requests:,} requests in the timed runs, "
                f"{cpu / requests * 1e6:,.0f} µs each"
            )
    for name, unsent in workload.unsent.items():
        if unsent:
            codes = ", ".join(f"{n} answers of {code}" for code, n in sorted(unsent.items()))
            print(
                f"  {name} logged {codes} with no bytes sent: requests in flight as wrk "
                "stopped, which no client saw"
            )
    for name, runs in workload.runs.items():
        if statistics.median(run.wrk_cpu / run.seconds for run in runs) > 0.9:
            print(f"  note: wrk was busy all along against {name}: its figure is a floor")


# ---- one metadata backend, from an empty database to its report ----


async def sha256_of(url: str, headers: dict[str, str]) -> tuple[int, bytes, str]:
    digest, size = hashlib.sha256(), 0
    async with (
        ClientSession(timeout=ClientTimeout(total=300)) as session,
        session.get(url, headers=headers) as response,
    ):
        async for chunk in response.content.iter_chunked(MIB):
            digest.update(chunk)
            size += len(chunk)
        return response.status, digest.digest(), f"{size} bytes"


@dataclass
class Deployed:
    """A version of the gateway with data of its own: its database, media, account, link."""

    gateway: Gateway
    folder: Path
    port: int
    env: dict[str, str]
    sid: str
    authorization: str
    media: Path
    head: bytes  # the file's first RANGE_BYTES
    whole: bytes  # the file's SHA-256
    size: int
    link: str = ""
    issued: float = 0.0

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.folder / "gateway.log"

    def fresh_link(self, seconds: float) -> str:
        """The gateway's link, issued again if it would expire within `seconds`."""
        if not self.link or self.issued + MAX_TTL - time.time() < seconds + 60:
            self.issued = time.time()
            self.link = asyncio.run(issue_link(self.base, self.sid, self.authorization, MAX_TTL))
        return self.link


def deploy(gateway: Gateway, database_url: str, folder: Path, recording: Path) -> Deployed:
    """An account and the recording ingested into it, by `gateway`'s own commands."""
    folder.mkdir()
    port = free_port()
    env = gateway.env(database_url, folder, port)
    account = gateway.cli(env, "accounts", "create", "--name", "Benchmark")
    account_sid, auth_token = account["account_sid"], account["auth_token"]
    sid = gateway.cli(env, "ingest", str(recording), "--account", account_sid)["sid"]
    stored = list((folder / "media" / account_sid / sid).glob("*.mkv"))
    if len(stored) != 1:
        whose = "" if gateway.tree is None else f"{gateway.name}: "
        raise Failed(f"{whose}the ingested media is not where it should be: {stored}")
    media = stored[0]
    content = media.read_bytes()
    head, whole, size = content[:RANGE_BYTES], hashlib.sha256(content).digest(), len(content)
    del content
    authorization = basic(account_sid, auth_token)
    return Deployed(gateway, folder, port, env, sid, authorization, media, head, whole, size)


def revision_folder(folder: Path, number: int) -> Path:
    """Where the `number`th revision's gateway keeps its data, in a backend's `folder`."""
    return folder / f"revision-{number + 1}"


def run_backend(
    backend: str,
    database_url: str,
    folder: Path,
    recording: Path,
    args: argparse.Namespace,
    cpus: tuple[int, int] | None,
    nginx_ranges: bool,
    older: list[tuple[Gateway, str]] | None = None,
) -> None:
    """`older` are the revisions' gateways, each with a database URL of its own."""
    serve_cpu, wrk_cpu = cpus if cpus else (None, None)
    print(f"\n{backend}: ingesting {recording.stat().st_size / MIB:.1f} MiB ...", flush=True)
    main = deploy(WORKING_TREE, database_url, folder, recording)
    deployed = [main]
    for number, (gateway, url) in enumerate(older or []):
        print(f"{backend}: ingesting it again with {gateway.name}'s own CLI ...", flush=True)
        deployed.append(deploy(gateway, url, revision_folder(folder, number), recording))
    by_name = {each.gateway.name: each for each in deployed}
    media, sid, authorization = main.media, main.sid, main.authorization
    ranged = {"Range": f"bytes=0-{RANGE_BYTES - 1}"}

    with ExitStack() as running:
        servers: dict[str, Server] = {}
        cpu_at_start: dict[str, float] = {}
        for each in deployed:
            name = each.gateway.name
            command = [*pinned(serve_cpu), *each.gateway.command(), "serve"]
            servers[name] = running.enter_context(
                serving(name, command, each.port, each.log, each.env, each.gateway.tree)
            )
            cpu_at_start[name] = servers[name].cpu_seconds()
            each.fresh_link(0)
        link = main.link
        token = link.rsplit("/", 1)[1]

        anchors = {}
        for kind in ("redirect", "range"):
            anchor_port = free_port()
            command = [
                *pinned(serve_cpu), sys.executable, __file__, "--anchor", kind,
                "--anchor-port", str(anchor_port), "--anchor-link", link,
                "--anchor-media", str(media),
            ]  # fmt: skip
            log = folder / f"anchor-{kind}.log"
            server = running.enter_context(serving(f"{kind} anchor", command, anchor_port, log))
            anchors[kind] = (f"http://127.0.0.1:{anchor_port}", server)
        with_nginx = "download" in args.only or (nginx_ranges and "range" in args.only)
        if with_nginx:
            nginx_base, nginx_server = running.enter_context(
                nginx(folder / "nginx", media.parent, serve_cpu)
            )
            nginx_url = nginx_base + secure_link(f"/files/{media.name}", int(time.time()) + 86400)

        def gateway_targets(
            url: Callable[[Deployed], str],
            headers: dict[str, str] | Callable[[Deployed], dict[str, str]],
        ) -> list[Target]:
            """Each gateway's target, the working tree's first, each asked its own `url`."""
            return [
                Target(
                    each.gateway.name, url(each), servers[each.gateway.name],
                    headers(each) if callable(headers) else headers,
                    LogWatch(each.log), LogWatch(each.log),
                )
                for each in deployed
            ]  # fmt: skip

        def nginx_target(headers: dict[str, str]) -> Target:
            folder_of = nginx_server.log.parent
            access, complaints = (
                LogWatch(folder_of / "access.log"),
                LogWatch(folder_of / "error.log"),
            )
            return Target("nginx secure_link", nginx_url, nginx_server, headers, access, complaints)

        def expected(target: Target) -> Deployed:
            """Whose data `target` serves: its own gateway's; the anchors' and nginx's are
            the working tree's."""
            return by_name.get(target.name, main)

        async def check_issuance(target: Target) -> None:
            async with (
                ClientSession() as session,
                session.get(target.url, headers=target.headers, allow_redirects=False) as answer,
            ):
                body = await answer.text()
                if answer.status != 302:
                    raise Failed(f"answered {answer.status}, not 302: {body[:300]}")
                named = json.loads(body).get("redirect_to")
                if answer.headers.get("Location") != named or not named.startswith(
                    f"{expected(target).base}/media/"
                ):
                    raise Failed(f"Location {answer.headers.get('Location')} and {named}")

        async def check_range(target: Target) -> None:
            own = expected(target)
            async with (
                ClientSession() as session,
                session.get(target.url, headers=target.headers) as answer,
            ):
                body = await answer.read()
                if answer.status != 206:
                    raise Failed(f"answered {answer.status}, not 206: {body[:300]!r}")
                if body != own.head:
                    raise Failed(f"answered {len(body)} bytes, not the file's first {RANGE_BYTES}")
                said = answer.headers.get("Content-Range")
                if said != f"bytes 0-{RANGE_BYTES - 1}/{own.size}":
                    raise Failed(f"answered Content-Range: {said}")

        async def check_download(target: Target) -> None:
            own = expected(target)
            status, digest, read = await sha256_of(target.url, target.headers)
            if status != 200:
                raise Failed(f"answered {status}, not 200")
            if digest != own.whole:
                raise Failed(f"answered {read} that are not the file's {own.size}")

        # How long a link must last: a workload times each of its targets in turn.
        per_target = args.rounds * args.duration + args.warmup
        planned: list[Callable[[], Workload]] = []
        if "issuance" in args.only:
            redirect_base, redirect_server = anchors["redirect"]
            path = f"/v1/Recordings/{sid}/Media"
            auth = {"Authorization": authorization}
            planned.append(
                lambda: Workload(
                    "issuance", "a. issuance: GET /v1/Recordings/{Sid}/Media, Basic auth → 302",
                    "req/s", 302, args.connections,
                    [*gateway_targets(lambda each: f"{each.base}/v1/Recordings/{each.sid}/Media",
                                      lambda each: {"Authorization": each.authorization}),
                     Target("bare aiohttp 302", redirect_base + path, redirect_server, auth)],
                    check_issuance,
                )
            )  # fmt: skip
        if "range" in args.only:
            range_base, range_server = anchors["range"]

            def range_workload() -> Workload:
                lasting = per_target * (len(deployed) + 2)
                targets = [
                    *gateway_targets(lambda each: each.fresh_link(lasting), ranged),
                    Target("bare aiohttp pread", f"{range_base}/media/{token}", range_server,
                           ranged),
                ]  # fmt: skip
                if nginx_ranges:
                    targets.append(nginx_target(ranged))
                return Workload(
                    "range", f"b. signed link, Range: {ranged['Range']} → 206", "req/s", 206,
                    args.connections, targets, check_range,
                )  # fmt: skip

            planned.append(range_workload)
        if "download" in args.only:
            lasting = per_target * (len(deployed) + 1)
            planned.append(
                lambda: Workload(
                    "download", f"c. signed link, whole {main.size / MIB:.1f} MiB file → 200",
                    "MB/s", 200, DOWNLOAD_CONNECTIONS,
                    [*gateway_targets(lambda each: each.fresh_link(lasting), {}),
                     nginx_target({})],
                    check_download,
                )
            )  # fmt: skip

        for make in planned:
            workload = make()
            print(f"  {workload.title}", flush=True)
            measure(workload, args, wrk_cpu)
            report(backend, workload, args)
        for number, each in enumerate(deployed):
            name = each.gateway.name
            used = servers[name].cpu_seconds() - cpu_at_start[name]
            gap = "\n" if number == 0 else ""
            print(f"{gap}{backend}: the {name} process used {used:.1f} CPU seconds in all")
        sys.stdout.flush()


# ---- the whole run ----


def machine_line(nginx_path: str | None) -> str:
    versions = [nginx_version(nginx_path)] if nginx_path else []
    said = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False)
    first = (said.stdout or said.stderr).splitlines()[:1]
    versions.append(first[0].split(" [")[0] if first else "wrk")
    return machine(versions)


def workloads(value: str) -> tuple[str, ...]:
    chosen = tuple(name.strip() for name in value.split(",") if name.strip())
    unknown = [name for name in chosen if name not in WORKLOADS]
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(f"choose from {','.join(WORKLOADS)}")
    return chosen


def revisions(value: str) -> list[str]:
    chosen = [name.strip() for name in value.split(",") if name.strip()]
    if not chosen:
        raise argparse.ArgumentTypeError("name at least one git revision")
    if len(set(chosen)) < len(chosen):
        raise argparse.ArgumentTypeError("each revision once")
    return chosen


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=5, help="seconds a timed run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2, help="wrk's threads")
    parser.add_argument("--warmup", type=int, default=1, help="seconds per target, untimed")
    parser.add_argument("--size-mib", type=int, default=64)
    parser.add_argument("--only", type=workloads, default=WORKLOADS, metavar=",".join(WORKLOADS))
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get(
            "GATEWAY_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test"
        ),
    )
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument(
        "--revisions",
        type=revisions,
        default=[],
        metavar="REV[,REV...]",
        help="git revisions whose gateways are measured too, as gateway@REV",
    )
    parser.add_argument("--anchor", choices=("redirect", "range"), help=argparse.SUPPRESS)
    parser.add_argument("--anchor-port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--anchor-link", help=argparse.SUPPRESS)
    parser.add_argument("--anchor-media", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.anchor:
        serve_anchor(args.anchor, args.anchor_port, args.anchor_link, args.anchor_media)
        return 0
    if args.rounds < 1 or args.duration <= 0 or args.connections < 1 or args.size_mib < 1:
        parser.error("--rounds, --duration, --connections and --size-mib must be positive")

    needs_nginx = "range" in args.only or "download" in args.only
    nginx_path = nginx_binary()
    missing = [] if shutil.which("wrk") else ["wrk"]
    if needs_nginx and nginx_path is None:
        missing.append("nginx")
    if missing:
        print(f"hot_path: {' and '.join(missing)} not found; install with: {INSTALL}")
        return 2
    if nginx_path and needs_nginx:
        built = subprocess.run([nginx_path, "-V"], capture_output=True, text=True, check=False)
        if "http_secure_link_module" not in built.stderr:
            print(f"hot_path: this nginx has no secure_link module; install with: {INSTALL}")
            return 2
    if shutil.which("ffmpeg") is None:
        print("hot_path: ffmpeg not found; install with: sudo apt-get install ffmpeg")
        return 2
    cpus: tuple[int, int] | None = (0, 1)
    if shutil.which("taskset") is None:
        print("warning: taskset not found (util-linux): running unpinned, figures are noisier")
        cpus = None
    elif len(os.sched_getaffinity(0)) < 2 or not {0, 1} <= os.sched_getaffinity(0):
        print("warning: CPUs 0 and 1 are not both available: running unpinned")
        cpus = None

    stop_on_sigterm()
    postgres: list[tuple[str, str]] = []  # a database for each gateway, the working tree's first
    try:
        if not args.no_postgres:
            try:
                for _ in range(1 + len(args.revisions)):
                    postgres.append(asyncio.run(create_database(args.postgres_url)))
            except Exception as error:
                print(
                    f"hot_path: PostgreSQL at {args.postgres_url}: {error}; "
                    "pass --postgres-url DSN, or --no-postgres to skip it"
                )
                return 2
        print(f"machine: {machine_line(nginx_path if needs_nginx else None)}")
        layout = "unpinned" if cpus is None else "servers on CPU 0, wrk on CPU 1"
        print(
            f"{layout}; wrk {args.threads} threads, {args.connections} connections "
            f"({DOWNLOAD_CONNECTIONS} for downloads); {args.rounds} rounds of "
            f"{args.duration} s after {args.warmup} s of warm-up per target"
        )
        print(
            "server CPU and wrk CPU: the process's CPU time over the run's wall time, "
            "100% being one core"
        )
        with (
            checked_out(args.revisions) as older,
            tempfile.TemporaryDirectory(prefix="hot-path-") as temp,
        ):
            folder = Path(temp)
            recording = folder / "noise.mkv"
            print(f"making a {args.size_mib} MiB VP8 recording with ffmpeg ...", flush=True)
            vp8_recording(recording, args.size_mib * MIB)
            sqlite = [
                (gateway, f"sqlite:///{revision_folder(folder / 'sqlite', number) / 'gateway.db'}")
                for number, gateway in enumerate(older)
            ]
            run_backend(
                "sqlite", f"sqlite:///{folder / 'sqlite' / 'gateway.db'}", folder / "sqlite",
                recording, args, cpus, nginx_ranges=True, older=sqlite,
            )  # fmt: skip
            if postgres:
                urls = [url for _, url in postgres]
                run_backend(
                    "postgres", urls[0], folder / "postgres", recording, args, cpus,
                    nginx_ranges=False, older=list(zip(older, urls[1:], strict=True)),
                )  # fmt: skip
    except (Failed, subprocess.CalledProcessError, subprocess.TimeoutExpired) as failed:
        print(f"\nhot_path: FAILED: {failed}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nhot_path: interrupted; stopped everything it started", file=sys.stderr)
        return 130
    finally:
        for name, _ in postgres:
            try:
                asyncio.run(drop_database(args.postgres_url, name))
            except Exception as error:
                print(f"hot_path: could not drop database {name}: {error}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
