"""Streaming from S3 through the gateway, against reading S3 directly, in one run.

    python benchmarks/s3_streaming.py [--size-mib 256] [--clients 50] [--client-mib 64]

Starts moto's S3 server and `gateway serve` (uvloop, SQLite metadata, S3 media) as
processes on loopback, then measures:
1. one client reading a large object as fast as it can, in turn through the gateway,
   straight from S3 with a warm aiobotocore client and, when nginx is installed,
   through nginx proxying to S3 (a reference hop written in C); the throughput
   ratios, the gateway's CPU time per GiB and how much its RSS grew;
2. many clients each reading a different object at a throttled pace; the gateway's
   peak RSS.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import psutil
from aiobotocore.session import get_session
from aiohttp import ClientSession, ClientTimeout

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import harness
from benchmarks.harness import moto_server, nginx_binary
from gateway.accounts import create_account
from gateway.config import Settings
from gateway.media_links import MediaLinkRequest, MediaLinks
from gateway.models import Codec, Container, MediaType, Recording, Status
from gateway.recordings import Recordings
from gateway.sids import mint
from gateway.signing import MediaLinkSigner
from gateway.storage import open_storage
from gateway.store import open_store
from tests.processes import free_port, serving

MIB = 1024 * 1024
KEY = "benchmark-signing-key-0123456789"


class PeakRss:
    """Samples a process's resident memory every 20 ms."""

    def __init__(self, pid: int) -> None:
        self._process = psutil.Process(pid)
        self.peak = self.baseline = self._process.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, self._process.memory_info().rss)

    def __enter__(self) -> PeakRss:
        self.peak = self.baseline = self._process.memory_info().rss
        self._stop.clear()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


class CpuTime:
    """User and system CPU seconds a process spends inside the block."""

    def __init__(self, pid: int) -> None:
        self._process = psutil.Process(pid)
        self.seconds = 0.0

    def _now(self) -> float:
        times = self._process.cpu_times()
        return float(times.user + times.system)

    def __enter__(self) -> CpuTime:
        self._started = self._now()
        return self

    def __exit__(self, *_: object) -> None:
        self.seconds = self._now() - self._started


async def random_chunks(size: int) -> AsyncIterator[bytes]:
    block = os.urandom(MIB)
    for start in range(0, size, MIB):
        yield block[: min(MIB, size - start)]


async def seed(settings: Settings, sizes: list[int]) -> tuple[str, str, list[Recording]]:
    """An account and one stored recording per size, written as the gateway writes them."""
    store, storage = await open_store(settings), await open_storage(settings)
    try:
        account = await create_account(store, "Benchmark")
        made = []
        for size in sizes:
            sid = mint("RT")
            key = f"{account.sid}/{sid}.mkv"
            await storage.put(key, random_chunks(size))
            now = datetime.now(UTC)
            recording = Recording(
                sid=sid, account_sid=account.sid, status=Status.COMPLETED, date_created=now,
                date_updated=now, source_sid=mint("MT"), type=MediaType.VIDEO,
                container_format=Container.MKV, codec=Codec.VP8, duration=60, size=size,
                track_name="bench", offset=0, media_key=key, media_etag=f'"{sid}"',
            )  # fmt: skip
            await store.add_recording(recording)
            made.append(recording)
        return account.sid, account.auth_token, made
    finally:
        await storage.aclose()
        await store.aclose()


async def links(settings: Settings, base: str, recordings: list[Recording]) -> list[str]:
    store, storage = await open_store(settings), await open_storage(settings)
    try:
        service = MediaLinks(Recordings(store, storage), MediaLinkSigner((KEY,)))
        request = MediaLinkRequest(ttl=3600)
        return [await service.issue(r.account_sid, r.sid, None, request, base) for r in recordings]
    finally:
        await storage.aclose()
        await store.aclose()


async def read_through_gateway(link: str, pace: float | None = None) -> int:
    """Bytes read; with `pace` (bytes a second), no faster than that."""
    total, started = 0, time.perf_counter()
    timeout = ClientTimeout(total=None)
    async with ClientSession(timeout=timeout) as session, session.get(link) as response:
        assert response.status == 200, response.status
        async for chunk in response.content.iter_chunked(256 * 1024):
            total += len(chunk)
            if pace:
                ahead = total / pace - (time.perf_counter() - started)
                if ahead > 0:
                    await asyncio.sleep(ahead)
    return total


async def read_directly(settings: Settings, key: str) -> tuple[int, float]:
    """Bytes read and seconds taken by a warm client, as an application's would be."""
    bucket = settings.storage_url.removeprefix("s3://")
    session = get_session()
    async with session.create_client("s3", endpoint_url=settings.s3_endpoint_url) as client:
        # A client's first request costs some 20 ms of setup the gateway's long-lived
        # client paid long ago; paid here too before the clock starts.
        await client.head_object(Bucket=bucket, Key=key)
        started = time.perf_counter()
        answer = await client.get_object(Bucket=bucket, Key=key)
        total = 0
        while chunk := await answer["Body"].read(256 * 1024):
            total += len(chunk)
        return total, time.perf_counter() - started


async def timed_get(url: str) -> tuple[int, float]:
    started = time.perf_counter()
    size = await read_through_gateway(url)
    return size, time.perf_counter() - started


NGINX_CONF = """
worker_processes 1;
daemon off;
pid {folder}/nginx.pid;
error_log {folder}/error.log;
events {{ worker_connections 64; }}
http {{
    access_log off;
    proxy_temp_path {folder}/temp;
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass {upstream};
            proxy_http_version 1.1;
            proxy_buffer_size 256k;
            proxy_buffers 8 256k;
            proxy_busy_buffers_size 512k;
            proxy_max_temp_file_size 0;
        }}
    }}
}}
"""


@contextmanager
def nginx_in_front_of(upstream: str) -> Iterator[str | None]:
    """nginx proxying to `upstream`, or None where nginx is not installed."""
    nginx = nginx_binary()
    if nginx is None:
        yield None
        return
    port = free_port()
    with tempfile.TemporaryDirectory() as folder:
        conf = Path(folder) / "nginx.conf"
        conf.write_text(NGINX_CONF.format(folder=folder, port=port, upstream=upstream))
        command = [nginx, "-p", folder, "-c", str(conf)]
        with harness.serving("nginx", command, port, Path(folder) / "nginx.out"):
            yield f"http://127.0.0.1:{port}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--client-mib", type=int, default=64)
    parser.add_argument("--pace-mib", type=float, default=4.0, help="each slow client's MiB/s")
    args = parser.parse_args()
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "benchmark")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "benchmark")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

    with (
        tempfile.TemporaryDirectory() as logs,
        moto_server(Path(logs) / "moto.log") as endpoint,
        tempfile.TemporaryDirectory() as folder,
    ):
        bucket = f"bench-{secrets.token_hex(4)}"
        env = {
            **os.environ,
            "GATEWAY_DATABASE_URL": f"sqlite:///{folder}/gateway.db",
            "GATEWAY_STORAGE_URL": f"s3://{bucket}",
            "GATEWAY_S3_ENDPOINT_URL": endpoint,
            "GATEWAY_SIGNING_KEYS": KEY,
        }
        settings = Settings.from_env(env)

        async def make_bucket() -> None:
            async with get_session().create_client("s3", endpoint_url=endpoint) as client:
                await client.create_bucket(Bucket=bucket)

        asyncio.run(make_bucket())
        sizes = [args.size_mib * MIB] + [args.client_mib * MIB] * args.clients
        print(f"storing {len(sizes)} objects in the S3 server ...", flush=True)
        _, _, made = asyncio.run(seed(settings, sizes))
        with serving(env) as gateway, nginx_in_front_of(endpoint) as nginx:
            base, gateway_pid = gateway.base_url, gateway.pid
            all_links = asyncio.run(links(settings, base, made))
            big, big_link = made[0], all_links[0]

            speeds: dict[str, list[float]] = {"direct": [], "gateway": [], "nginx": []}
            growth, cpu = [], []
            for _ in range(args.rounds):
                with PeakRss(gateway_pid) as rss, CpuTime(gateway_pid) as used:
                    size, seconds = asyncio.run(timed_get(big_link))
                assert size == big.size
                speeds["gateway"].append(size / seconds / MIB)
                growth.append((rss.peak - rss.baseline) / MIB)
                cpu.append(used.seconds / (size / 1024 / MIB))
                if nginx:
                    size, seconds = asyncio.run(timed_get(f"{nginx}/{bucket}/{big.media_key}"))
                    assert size == big.size
                    speeds["nginx"].append(size / seconds / MIB)
                size, seconds = asyncio.run(read_directly(settings, big.media_key or ""))
                speeds["direct"].append(size / seconds / MIB)
            median = {name: statistics.median(runs) for name, runs in speeds.items() if runs}
            print(f"\n{args.size_mib} MiB object, one client reading as fast as it can "
                  f"(medians of {args.rounds} rounds):")  # fmt: skip
            print(f"  aiobotocore directly : {median['direct']:7.1f} MiB/s")
            print(f"  through the gateway  : {median['gateway']:7.1f} MiB/s"
                  f"  {median['gateway'] / median['direct']:.2f} of direct")  # fmt: skip
            if nginx:
                print(f"  through nginx        : {median['nginx']:7.1f} MiB/s"
                      f"  {median['nginx'] / median['direct']:.2f} of direct")  # fmt: skip
                print(f"  gateway / nginx      : {median['gateway'] / median['nginx']:7.2f}")
            else:
                print("  (install nginx to compare with it as a reference hop)")
            print(f"  gateway CPU          : {statistics.median(cpu):7.2f} s per GiB")
            print(f"  gateway RSS growth   : {max(growth):.1f} MiB at most")

            async def slow_clients() -> list[int]:
                pace = args.pace_mib * MIB
                return await asyncio.gather(
                    *(read_through_gateway(link, pace) for link in all_links[1:])
                )

            with PeakRss(gateway_pid) as rss:
                started = time.perf_counter()
                sizes_read = asyncio.run(slow_clients())
                seconds = time.perf_counter() - started
            assert all(size == args.client_mib * MIB for size in sizes_read)
            print(f"\n{args.clients} clients, each reading its own {args.client_mib} MiB object "
                  f"at {args.pace_mib} MiB/s ({seconds:.0f} s):")  # fmt: skip
            print(f"  gateway RSS          : {rss.baseline / MIB:.0f} MiB before, "
                  f"{rss.peak / MIB:.0f} MiB at its peak")  # fmt: skip


if __name__ == "__main__":
    main()
