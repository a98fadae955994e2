"""What one request costs the server, in instructions: a measure the machine's noise
cannot move, for comparing changes to the hot path side by side.

    python benchmarks/request_cost.py [--requests 640] [--tree PATH] [--postgres-url DSN]

The gateway's real application and server protocol (or a bare anchor app: the same
302 as a constant, or a range answered by one pread) are fed pipelined requests over a
stand-in transport, 64 connections at a time, in one process under valgrind's
cachegrind. Two runs that differ only in how many requests they answer leave the cost
of start-up out: their difference over the extra requests is the cost of one request
in user-space instructions (the kernel's share, the same for every target, is not
counted). `--tree` measures the gateway package of another checkout, such as a
`git worktree` of an older revision; its own commands set up its data.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

REPOSITORY: Final = Path(__file__).resolve().parents[1]
CONNECTIONS: Final = 64
PIPELINED: Final = 16  # requests each connection sends at once
SIGNING_KEY: Final = "benchmark-signing-key-0123456789"
RANGE: Final = "bytes=0-1023"
TARGETS: Final = (
    ("issuance", "gateway", "GET …/Media → 302"),
    ("issuance", "anchor", "bare aiohttp 302"),
    ("range", "gateway", "signed link, 1 KiB range → 206"),
    ("range", "anchor", "bare aiohttp pread"),
)


# ---- in the measured process ----


class Transport:
    """Enough of an asyncio transport for aiohttp's protocol: it counts responses."""

    def __init__(self, answered: list[int], wake: asyncio.Event, expected: bytes) -> None:
        self._answered, self._wake, self._expected = answered, wake, expected
        self.closing = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        data = bytes(data)
        started = data.count(b"HTTP/1.1 ")
        if started != data.count(b"HTTP/1.1 " + self._expected):
            sys.__stderr__.write(f"answered other than {self._expected.decode()}: {data[:300]!r}\n")
            raise SystemExit(1)
        self._answered[0] += started
        if self._answered[0] >= self._answered[1]:
            self._wake.set()

    def writelines(self, lines: list[bytes]) -> None:
        for line in lines:
            self.write(line)

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    abort = close

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 8000)}.get(
            name, default
        )

    def get_write_buffer_size(self) -> int:
        return 0

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def anchor_app(kind: str, link: str, media: str) -> Any:
    """The least an aiohttp app can do for the workload: hot_path.py serves the same."""
    from aiohttp import web

    app = web.Application()
    if kind == "issuance":
        body = json.dumps({"redirect_to": link}).encode()

        async def redirect(request: web.Request) -> web.Response:
            return web.Response(
                status=302, body=body, content_type="application/json", headers={"Location": link}
            )

        app.router.add_get("/v1/Recordings/{sid}/Media", redirect)
        return app
    fd = os.open(media, os.O_RDONLY)  # once, for the process's life
    size = os.fstat(fd).st_size
    asked = re.compile(r"bytes=(\d+)-(\d+)")

    async def ranged(request: web.Request) -> web.Response:
        match = asked.fullmatch(request.headers.get("Range", ""))
        if match is None or int(match[1]) >= size:
            return web.Response(status=416, headers={"Content-Range": f"bytes */{size}"})
        start, end = int(match[1]), min(int(match[2]), size - 1)
        headers = {
            "Content-Range": f"bytes {start}-{end}/{size}",
            "Content-Type": "video/webm",
            "Accept-Ranges": "bytes",
        }
        return web.Response(status=206, body=os.pread(fd, end - start + 1, start), headers=headers)

    app.router.add_get("/media/{token}", ranged)
    return app


async def answer(kind: str, target: str, requests: int, setup: dict[str, str]) -> None:
    """Answer `requests` requests of `kind` from `target`, in this process."""
    from aiohttp import web

    request = setup[f"{kind}_request"].encode()
    if target == "gateway":
        from gateway.api.server import gateway_runner
        from gateway.app import create_app
        from gateway.config import Settings

        app = create_app(Settings.from_env(), (SIGNING_KEY,))
        runner: web.AppRunner = gateway_runner(
            app, header_timeout=10, shutdown_grace=1, handle_signals=False
        )
    else:
        runner = web.AppRunner(anchor_app(kind, setup["link"], setup["media"]), access_log=None)
    await runner.setup()
    assert runner.server is not None
    answered, wake = [0, 0], asyncio.Event()
    connections = []
    for _ in range(CONNECTIONS):
        expected = b"302 " if kind == "issuance" else b"206 "
        transport, protocol = Transport(answered, wake, expected), runner.server()
        protocol.connection_made(transport)  # type: ignore[arg-type]
        connections.append((transport, protocol))
    sent = 0
    while sent < requests:
        each = min(PIPELINED, (requests - sent) // CONNECTIONS) or 1
        for _, protocol in connections:
            protocol.data_received(request * each)
        sent += each * CONNECTIONS
        answered[1] = sent
        await wake.wait()
        wake.clear()
    for _, protocol in connections:
        protocol.connection_lost(None)
    await runner.cleanup()


def child(kind: str, target: str, requests: int, setup_file: str) -> None:
    import logging

    import uvloop

    setup = json.loads(Path(setup_file).read_text())
    os.environ.update(setup["env"])
    sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - the access log, for the process's life
    logging.basicConfig(level=logging.INFO)
    uvloop.run(answer(kind, target, requests, setup))


# ---- the measuring process ----


def gateway_cli(tree: Path, env: dict[str, str], *args: str) -> Any:
    done = subprocess.run(
        [sys.executable, "-m", "gateway", *args], cwd=tree, env=env, capture_output=True,
        text=True, timeout=300, check=True,
    )  # fmt: skip
    return json.loads(done.stdout)


def prepare(tree: Path, folder: Path, database_url: str) -> Path:
    """An account and a recording, by the measured tree's own commands: the setup file
    the measured processes read."""
    recording = folder / "recording.mkv"
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
         "testsrc2=size=320x240:rate=30", "-t", "5", "-c:v", "libvpx", str(recording)],
        check=True, timeout=300,
    )  # fmt: skip
    env = {
        "GATEWAY_DATABASE_URL": database_url,
        "GATEWAY_STORAGE_URL": f"file://{folder / 'media'}",
        "GATEWAY_SIGNING_KEYS": SIGNING_KEY,
    }
    full_env = {**os.environ, **env, "PYTHONPATH": str(tree)}
    account = gateway_cli(tree, full_env, "accounts", "create", "--name", "Cost")
    sid = gateway_cli(
        tree, full_env, "ingest", str(recording), "--account", account["account_sid"]
    )["sid"]
    (media,) = (folder / "media").rglob("*.mkv")
    credentials = f"{account['account_sid']}:{account['auth_token']}".encode()
    authorization = "Basic " + base64.b64encode(credentials).decode()
    head = "Host: 127.0.0.1:8000\r\n"
    issuance = f"GET /v1/Recordings/{sid}/Media HTTP/1.1\r\n{head}Authorization: {authorization}"
    link = _issue(tree, env, issuance)
    path = urlsplit(link).path
    setup = {
        "env": env,
        "media": str(media),
        "link": link,
        "issuance_request": issuance + "\r\n\r\n",
        "range_request": f"GET {path} HTTP/1.1\r\n{head}Range: {RANGE}\r\n\r\n",
    }
    setup_file = folder / "setup.json"
    setup_file.write_text(json.dumps(setup))
    return setup_file


def _issue(tree: Path, env: dict[str, str], issuance: str) -> str:
    """A link with the longest Ttl, issued by the measured gateway through the same path."""
    script = (
        "import asyncio, os, sys; sys.path.insert(0, os.getcwd()); "
        "from aiohttp.test_utils import TestClient, TestServer; "
        "from gateway.app import create_app; from gateway.config import Settings\n"
        "async def main():\n"
        f"    app = create_app(Settings.from_env(), ({SIGNING_KEY!r},))\n"
        "    async with TestClient(TestServer(app, host='127.0.0.1')) as client:\n"
        "        response = await client.get(sys.argv[1] + '?Ttl=3600', headers={"
        "'Authorization': sys.argv[2]}, allow_redirects=False)\n"
        "        print((await response.json())['redirect_to'])\n"
        "asyncio.run(main())"
    )
    line, authorization = issuance.split("\r\n")[0], issuance.split("Authorization: ")[1]
    done = subprocess.run(
        [sys.executable, "-c", script, line.split()[1], authorization], cwd=tree,
        env={**os.environ, **env}, capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    return done.stdout.strip()


def instructions(tree: Path, kind: str, target: str, requests: int, setup_file: Path) -> int:
    with tempfile.NamedTemporaryFile() as out:
        subprocess.run(
            ["valgrind", "--log-file=/dev/null", "--tool=cachegrind", "--cache-sim=no",
             f"--cachegrind-out-file={out.name}", sys.executable, str(Path(__file__).resolve()),
             "--child", kind, target, str(requests), str(setup_file)],
            cwd=tree, env={**os.environ, "PYTHONPATH": str(tree)}, stdout=subprocess.DEVNULL,
            timeout=1800, check=True,
        )  # fmt: skip
        for line in Path(out.name).read_text().splitlines():
            if line.startswith("summary:"):
                return int(line.split()[1])
    raise RuntimeError("cachegrind wrote no summary")


def measure(tree: Path, setup_file: Path, requests: int) -> None:
    costs: dict[tuple[str, str], float] = {}
    for kind, target, name in TARGETS:
        started = time.monotonic()
        few = instructions(tree, kind, target, requests, setup_file)
        many = instructions(tree, kind, target, 3 * requests, setup_file)
        costs[kind, target] = (many - few) / (2 * requests)
        print(
            f"  {name:<34} {costs[kind, target]:>10,.0f} instructions a request"
            f"   ({time.monotonic() - started:.0f} s)",
            flush=True,
        )
    for kind in ("issuance", "range"):
        ratio = costs[kind, "anchor"] / costs[kind, "gateway"]
        print(f"  {kind}: the anchor's cost is {ratio:.3f} of the gateway's")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=640, help="a multiple of 64")
    parser.add_argument("--tree", type=Path, default=REPOSITORY, help="the checkout to measure")
    parser.add_argument("--postgres-url", help="also measure with PostgreSQL metadata")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, target, requests, setup_file = args.child
        child(kind, target, int(requests), setup_file)
        return 0
    for tool, package in (("valgrind", "valgrind"), ("ffmpeg", "ffmpeg")):
        if shutil.which(tool) is None:
            print(f"request_cost: needs {tool}: sudo apt-get install {package}", file=sys.stderr)
            return 2
    tree = args.tree.resolve()
    print(f"measuring the gateway of {tree}, {args.requests} and {3 * args.requests} requests")
    with tempfile.TemporaryDirectory(prefix="request-cost-") as temporary:
        folder = Path(temporary)
        backends = [("sqlite", f"sqlite:///{folder / 'sqlite' / 'gateway.db'}")]
        if args.postgres_url:
            backends.append(("postgres", args.postgres_url))
        for backend, url in backends:
            (folder / backend).mkdir()
            print(f"{backend}:", flush=True)
            measure(tree, prepare(tree, folder / backend, url), args.requests)
    return 0


if __name__ == "__main__":
    sys.exit(main())
