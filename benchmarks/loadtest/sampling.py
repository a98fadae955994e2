"""What the processes cost while the load runs: CPU and resident memory of each part
(summed over a parent and its children: gunicorn's arbiter and workers, nginx's master
and worker), the machine's CPU, and each gateway's metrics endpoint when it answers."""

from __future__ import annotations

import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

import psutil  # type: ignore[import-untyped]  # no stubs installed

# Totals read from each instance's /metrics (Prometheus text), summed over their labels.
METRICS: Final = (
    "http_server_request_duration_seconds_count",
    "http_server_request_duration_seconds_sum",
    "process_cpu_seconds_total",
    "process_resident_memory_bytes",
)


@dataclass(frozen=True, slots=True)
class Usage:
    cpu: float  # CPU seconds so far, user and system
    rss: int  # bytes


@dataclass(frozen=True, slots=True)
class Sample:
    wall: float  # time.time()
    machine_busy: float  # CPU seconds so far the machine spent not idle, over all cores
    parts: dict[str, Usage]


@dataclass(frozen=True, slots=True)
class Scrape:
    wall: float
    instance: str
    totals: dict[str, float] | None  # None: the endpoint did not answer


def usage(processes: list[psutil.Process]) -> Usage:
    cpu, rss = 0.0, 0
    for process in processes:
        try:
            with process.oneshot():
                times = process.cpu_times()
                cpu += times.user + times.system
                rss += process.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return Usage(cpu, rss)


def tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def postgres_processes() -> list[psutil.Process]:
    """The machine's PostgreSQL server: its postmaster and every backend under it."""
    for process in psutil.process_iter(["name", "ppid"]):
        if process.info["name"] == "postgres" and process.info["ppid"] == 1:
            return tree(process.pid)
    return []


def machine_busy() -> float:
    times = psutil.cpu_times()
    idle = times.idle + getattr(times, "iowait", 0.0)
    return (
        float(sum(times)) - idle - getattr(times, "guest", 0.0) - getattr(times, "guest_nice", 0.0)
    )


def parse_metrics(text: str) -> dict[str, float]:
    """METRICS' totals from Prometheus text, each summed over its labelled samples."""
    totals: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name = line.split("{", 1)[0].split(" ", 1)[0]
        if name not in METRICS:
            continue
        # `name{labels} value [timestamp]`; a label's value may hold spaces.
        after = line.rsplit("}", 1)[1] if "{" in line else line[len(name) :]
        try:
            totals[name] = totals.get(name, 0.0) + float(after.split()[0])
        except (IndexError, ValueError):
            continue
    return totals


def scrape(address: str, timeout: float = 0.5) -> dict[str, float] | None:
    try:
        with urllib.request.urlopen(f"http://{address}/metrics", timeout=timeout) as answer:
            if answer.status != 200:
                return None
            return parse_metrics(answer.read().decode(errors="replace"))
    except (OSError, ValueError):
        return None


@dataclass
class Sampler:
    """Samples every `every` seconds, scrapes every `scrape_every`, in a thread of the
    orchestrating process (the load generator runs in a process of its own)."""

    parts: dict[str, Callable[[], list[psutil.Process]]]
    metrics: dict[str, str]  # instance name -> host:port of its metrics endpoint
    every: float = 1.0
    scrape_every: float = 5.0
    limit: float = 3600.0  # seconds: a sampler left running stops by itself
    samples: list[Sample] = field(default_factory=list)
    scrapes: list[Scrape] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sampler", daemon=True)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        started = time.monotonic()
        next_scrape = started
        while not self._stop.is_set() and time.monotonic() - started < self.limit:
            processes = {name: find() for name, find in self.parts.items()}
            self.samples.append(
                Sample(
                    time.time(),
                    machine_busy(),
                    {name: usage(found) for name, found in processes.items()},
                )
            )
            if time.monotonic() >= next_scrape:
                next_scrape += self.scrape_every
                for instance, address in self.metrics.items():
                    self.scrapes.append(Scrape(time.time(), instance, scrape(address)))
            self._stop.wait(self.every)


def other_work(earlier: Sample, later: Sample) -> float:
    """Cores the machine spent on processes that are not part of the run."""
    ours = sum(later.parts[p].cpu - earlier.parts[p].cpu for p in later.parts)
    return (later.machine_busy - earlier.machine_busy - ours) / (later.wall - earlier.wall)
