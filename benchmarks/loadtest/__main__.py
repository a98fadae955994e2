"""A bounded, open-loop load test of the whole deployment on loopback, with a report.

    python -m benchmarks.loadtest [--soak] [--seconds S] [--warmup S] [--rates KIND=R,...]
        [--postgres-url DSN] [--out docs/loadtest] [--no-s3-comparison]

Starts SeaweedFS (S3), a fresh PostgreSQL database, two `gateway serve --workers 2`
instances and nginx with the shipped site in front (TLS, a certificate made for the
run); stores real Matroska recordings through `gateway ingest` and the recorder API;
then drives a mix at fixed rates (issuing links, seeking, downloading, listing, deleting
and checking that deleted recordings' links are refused), sampling CPU, memory and the
metrics endpoints, and writes the report and its plots into --out. `--soak` runs the
same mix for 10 minutes and says whether the gateways' memory stayed flat.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any, Final

import asyncpg

from benchmarks.harness import (
    PROBLEM,
    REPOSITORY,
    Failed,
    LogWatch,
    machine,
    nginx_binary,
    nginx_version,
    postgres_version,
    stop,
    stop_on_sigterm,
    weed_binary,
    weed_version,
)
from benchmarks.loadtest import report, s3_servers, stack
from benchmarks.loadtest.driver import KINDS, MEANING, Plan
from benchmarks.loadtest.sampling import Sampler, postgres_processes, tree
from benchmarks.loadtest.schedule import Recorder
from gateway.demo import write_tone
from tests.media import write_noisy_video

# Per second. What two cores carry with room to spare while the load generator, nginx,
# SeaweedFS and PostgreSQL share them with the gateways: see the report's CPU table.
RATES: Final = {"issuance": 100.0, "seek": 60.0, "download": 2.0, "list": 20.0, "delete": 2.0}
SEEK_BYTES: Final = 256 * 1024
PAGE_SIZE: Final = 50
COPIES: Final = 4  # of the video, for seeks and downloads
INSTALL: Final = "apt-get install nginx-light openssl; pip install -e '.[loadtest]'"


def rates(value: str) -> dict[str, float]:
    chosen = dict(RATES)
    for pair in value.split(","):
        kind, _, rate = pair.partition("=")
        if kind.strip() not in RATES:
            raise argparse.ArgumentTypeError(f"kinds are {', '.join(RATES)}")
        chosen[kind.strip()] = float(rate)
    return chosen


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.loadtest", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--soak", action="store_true", help="10 minutes; is RSS flat?")
    parser.add_argument("--seconds", type=float, help="of load, warm-up included (90; soak 600)")
    parser.add_argument("--warmup", type=float, help="seconds left out of percentiles (10; 60)")
    parser.add_argument("--rates", type=rates, default=RATES, metavar="KIND=R,...")
    parser.add_argument("--instances", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2, help="of each instance")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get(
            "GATEWAY_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/postgres"
        ),
        help="a server where a database may be created (and is dropped after)",
    )
    parser.add_argument("--out", type=Path, default=REPOSITORY / "docs" / "loadtest")
    parser.add_argument("--no-s3-comparison", action="store_true")
    args = parser.parse_args()
    args.seconds = args.seconds or (600.0 if args.soak else 90.0)
    args.warmup = args.warmup if args.warmup is not None else (60.0 if args.soak else 10.0)
    if not 0 <= args.warmup < args.seconds or args.seconds > 3000:
        parser.error("--warmup must be shorter than --seconds, which is at most 3000")
    return args


def missing() -> list[str]:
    wanted = {"nginx": nginx_binary(), "openssl": shutil.which("openssl"), "weed": weed_binary()}
    return [name for name, found in wanted.items() if found is None]


def make_media(folder: Path) -> tuple[Path, Path]:
    """A noisy VP8 video of a few MiB (seeks and downloads) and a short OPUS tone
    (recordings to delete), real Matroska both."""
    video, tone = folder / "camera.mkv", folder / "microphone.mka"
    write_noisy_video(video, seconds=8, fps=15, bitrate="4M")
    write_tone(tone, 1.0)
    return video, tone


def commit() -> str:
    done = subprocess.run(
        ["git", "-C", str(REPOSITORY), "rev-parse", "--short", "HEAD"], capture_output=True,
        text=True, check=False,
    )  # fmt: skip
    return done.stdout.strip() or "unknown"


def main() -> int:
    args = arguments()
    if absent := missing():
        print(f"loadtest: {', '.join(absent)} not found; install with: {INSTALL}")
        return 2
    stop_on_sigterm()
    began = time.time()
    try:
        with tempfile.TemporaryDirectory(prefix="loadtest-") as temp:
            return run(args, Path(temp), began)
    except Failed as failed:
        print(f"\nloadtest: FAILED: {failed}", file=sys.stderr)
        return 1
    except (OSError, asyncpg.PostgresError) as error:
        print(f"\nloadtest: {type(error).__name__}: {error}", file=sys.stderr)
        print(f"(is PostgreSQL up at {args.postgres_url}? see --postgres-url)", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nloadtest: interrupted; stopped everything it started", file=sys.stderr)
        return 130


def run(args: argparse.Namespace, folder: Path, began: float) -> int:
    comparison = []
    if not args.no_s3_comparison:
        print("timing 1 KiB ranges of a 256 MiB object on moto and on SeaweedFS ...", flush=True)
        comparison = s3_servers.compare(folder / "s3-comparison")
        for each in comparison:
            print(f"  {each.server}: median {each.median_ms:.1f} ms, max {each.max_ms:.1f} ms")
    print("making the media ...", flush=True)
    video, tone = make_media(folder)
    # Enough to delete all along, with a full page of the list left at the end.
    deletable = math.ceil(args.rates["delete"] * args.seconds) + PAGE_SIZE + 5
    print("starting SeaweedFS, PostgreSQL database, gateways and nginx ...", flush=True)
    with stack.running(
        folder, args.postgres_url, instances=args.instances, workers=args.workers
    ) as running:
        asyncio.run(stack.check_redirect(running))
        print(f"storing {COPIES} videos and {deletable} recordings to delete ...", flush=True)
        seeding = time.monotonic()
        data = stack.seed(running, video, COPIES, tone, deletable)
        print(f"  stored in {time.monotonic() - seeding:.0f} s", flush=True)
        plan = Plan(
            base=running.site, ca=str(running.ca), authorization=data.authorization,
            recordings=data.recordings, deletable=data.deletable, rates=args.rates,
            seconds=args.seconds, warmup=args.warmup, interval=10.0 if args.soak else 5.0,
            seek_bytes=SEEK_BYTES, page_size=PAGE_SIZE,
        )  # fmt: skip
        print(f"load: {args.seconds:g} s at {args.rates} ...", flush=True)
        results, sampler, problems = load(running, plan, folder)
        versions, processes = describe(args, running)
    recorder = Recorder.loads(results["recorder"])
    name, title, prefix = (
        ("soak.md", "Soak test: 10 minutes of the mixed load", "soak-")
        if args.soak
        else ("README.md", "Load test: the mixed workload on two cores", "")
    )
    size = data.recordings[0]["size"]
    stored = (
        f"{COPIES} copies of an 8 s 320x240 VP8 noise video ({size / 2**20:.1f} MiB each) "
        f"stored with `gateway ingest`, read by seeks and downloads; {deletable} one-second "
        "OPUS recordings handed in through the recorder API (declare, upload, complete, "
        "to both instances in turn), each with a link issued before the load, deleted "
        "during it; all in one account."
    )
    meaning = {
        kind: MEANING[kind]
        .replace("{seek}", f"{SEEK_BYTES // 1024} KiB")
        .replace("{page}", str(PAGE_SIZE))
        for kind in KINDS
    }
    written = report.write(
        report.Run(
            title=title, prefix=prefix,
            command="make soak" if args.soak else "make loadtest",
            date=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), commit=commit(),
            machine=machine([]), versions=versions, processes=processes, rates=args.rates,
            meaning=meaning, seconds=args.seconds, warmup=args.warmup, recorder=recorder,
            wall_start=results["wall_start"], samples=sampler.samples, scrapes=sampler.scrapes,
            instances=[i.name for i in running.instances], site_changes=running.site_changes,
            data=stored, s3=comparison, log_problems=problems, soak=args.soak,
            took=time.time() - began,
        ),
        args.out,
        name,
    )  # fmt: skip
    errors = sum(recorder.errors.values())
    print(f"report: {written}; {errors} errors")
    if errors:
        print(f"the servers' logs are kept in {keep_logs(folder)}")
    return 0 if errors == 0 else 1


def keep_logs(folder: Path) -> Path:
    """The run's logs, copied out of its temporary folder to find what the errors were."""
    kept = REPOSITORY / "var" / "loadtest" / datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    kept.mkdir(parents=True)
    for log in [*folder.glob("*.log"), *(folder / "nginx").glob("*.log")]:
        shutil.copy2(log, kept / log.name)
    weed = folder / "seaweedfs" / "weed.log"
    if weed.exists():
        shutil.copy2(weed, kept / "seaweedfs.log")
    return kept


def load(
    running: stack.Stack, plan: Plan, folder: Path
) -> tuple[dict[str, Any], Sampler, dict[str, list[str]]]:
    """The load generator's run, in a process of its own, sampled meanwhile: its results,
    the samples, and the lines the gateways and nginx logged about problems."""
    plan_path, results_path = folder / "plan.json", folder / "results.json"
    plan_path.write_text(json.dumps(plan.__dict__))
    watches = {i.name: LogWatch(i.server.log) for i in running.instances}
    watches["nginx"] = LogWatch(running.folder / "nginx" / "error.log")
    for watch in watches.values():
        watch.skip()
    driver = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.loadtest.driver", str(plan_path), str(results_path)],
        cwd=REPOSITORY, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    parts = {i.name: (lambda pid=i.server.process.pid: tree(pid)) for i in running.instances}
    parts |= {
        "nginx": lambda: tree(running.nginx.process.pid),
        "seaweedfs": lambda: tree(running.seaweedfs.process.pid),
        "postgres": postgres_processes,
        "load generator": lambda: tree(driver.pid),
    }
    metrics = {i.name: i.metrics for i in running.instances}
    with Sampler(parts, metrics, limit=plan.seconds + 300) as sampler:
        try:
            driver.wait(timeout=plan.seconds + 180)
        except subprocess.TimeoutExpired:
            raise Failed("the load generator did not finish in time") from None
        finally:
            stop(driver)
    if driver.returncode != 0:
        raise Failed(f"the load generator failed ({driver.returncode})")
    problems = {
        name: [line for line in watch.read() if PROBLEM.search(line)]
        for name, watch in watches.items()
    }
    return json.loads(results_path.read_text()), sampler, problems


def describe(args: argparse.Namespace, running: stack.Stack) -> tuple[dict[str, str], list[str]]:
    """The versions of what ran, and the processes, for the report."""
    versions = {
        "nginx": f"{nginx_version(nginx_binary() or 'nginx')}, 1 worker, the shipped site "
        "over TLS (a self-signed certificate made for the run)",
        "Gateway": f"{args.instances} instances of `gateway serve --workers {args.workers}` "
        f"(gunicorn {version('gunicorn')} arbiter + {args.workers} uvloop workers each), "
        "PostgreSQL metadata, S3 media",
        "PostgreSQL": f"{asyncio.run(postgres_version(args.postgres_url))}, the machine's "
        "server; a fresh database for the run, dropped after",
        "S3": f"{weed_version()} (`weed mini`: master, volume, filer and S3 in one process)",
        "Load generator": f"aiohttp {version('aiohttp')} on asyncio's own loop (uvloop's "
        "TLS cuts bodies short when nginx closes a connection after them), hdrhistogram "
        f"{version('hdrhistogram')}",
    }
    processes = [
        "nginx: `https://127.0.0.1:PORT` in front, `least_conn` over the instances",
        *(
            f"{i.name}: `gateway serve --workers {args.workers}` on its own port, "
            f"`GATEWAY_METRICS_ADDRESS={i.metrics}`"
            for i in running.instances
        ),
        "SeaweedFS: one `weed mini` process, every port on loopback",
        "PostgreSQL: the machine's server on 127.0.0.1:5432",
        "the load generator: one process",
    ]
    return versions, processes


if __name__ == "__main__":
    sys.exit(main())
