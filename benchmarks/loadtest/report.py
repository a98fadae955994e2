"""The load test's report: Markdown with the setup, latency percentiles per kind of
request, errors, throughput, CPU and memory, and the plots over time (plots.py)."""

from __future__ import annotations

import os
import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from benchmarks.loadtest import plots
from benchmarks.loadtest.s3_servers import RangeTimes
from benchmarks.loadtest.sampling import Sample, Scrape, other_work
from benchmarks.loadtest.schedule import Recorder

MIB: Final = 1024 * 1024
# The RSS of the last minute against the first minute after warm-up: flat if it grew by
# no more than this fraction or this many bytes, whichever is larger.
FLAT_FRACTION: Final = 0.05
FLAT_BYTES: Final = 8 * MIB
MINUTE: Final = 60.0


@dataclass
class Run:
    """Everything a report is written from."""

    title: str
    prefix: str  # of the plot files: "" or "soak-"
    command: str
    date: str
    commit: str
    machine: str
    versions: dict[str, str]
    processes: list[str]
    rates: dict[str, float]
    meaning: dict[str, str]
    seconds: float
    warmup: float
    recorder: Recorder
    wall_start: float
    samples: list[Sample]
    scrapes: list[Scrape]
    instances: list[str]  # names of the gateway parts among the samples
    site_changes: list[tuple[str, str]]
    data: str  # what was stored
    s3: list[RangeTimes] = field(default_factory=list)
    log_problems: dict[str, list[str]] = field(default_factory=dict)
    soak: bool = False
    took: float = 0.0  # seconds the whole run took, set-up included


# ---- figures ----


def measured_window(run: Run) -> tuple[float, float]:
    """Wall times of the measured part: after the warm-up, until the last planned send."""
    return run.wall_start + run.warmup, run.wall_start + run.seconds


def cpu_and_rss(run: Run) -> dict[str, dict[str, float]]:
    """Per part: mean CPU (share of one core) and peak over 5 s, RSS first/last/peak."""
    begin, end = measured_window(run)
    inside = [s for s in run.samples if begin <= s.wall <= end]
    figures: dict[str, dict[str, float]] = {}
    if len(inside) < 2:
        return figures
    first, last = inside[0], inside[-1]
    span = last.wall - first.wall
    for part in first.parts:
        peaks = [
            (later.parts[part].cpu - earlier.parts[part].cpu) / (later.wall - earlier.wall)
            for earlier, later in zip(inside, inside[5:], strict=False)
        ]
        rss = [s.parts[part].rss for s in inside]
        figures[part] = {
            "cpu": (last.parts[part].cpu - first.parts[part].cpu) / span,
            "cpu_peak": max(peaks, default=0.0),
            "rss_first": rss[0],
            "rss_last": rss[-1],
            "rss_peak": max(rss),
        }
    machine = (last.machine_busy - first.machine_busy) / span
    figures["other work on the machine, not part of the run"] = {"cpu": other_work(first, last)}
    figures["machine: every process, other work included"] = {"cpu": machine}
    return figures


@dataclass(frozen=True)
class Flatness:
    part: str
    first: float  # mean RSS, bytes, in the first minute after warm-up
    last: float  # in the last minute
    allowed: float
    trend: float  # bytes a minute, least squares over the measured part

    @property
    def flat(self) -> bool:
        return self.last - self.first <= self.allowed


def flatness(run: Run) -> list[Flatness]:
    begin, end = measured_window(run)

    def mean_rss(parts: Iterable[str], since: float, until: float) -> float:
        picked = [s for s in run.samples if since <= s.wall < until]
        if not picked:
            return float("nan")
        return sum(sum(s.parts[p].rss for p in parts) for s in picked) / len(picked)

    def trend(parts: Iterable[str]) -> float:
        picked = [s for s in run.samples if begin <= s.wall <= end]
        if len(picked) < 2:
            return float("nan")
        xs = [s.wall / MINUTE for s in picked]
        ys = [float(sum(s.parts[p].rss for p in parts)) for s in picked]
        return statistics.linear_regression(xs, ys).slope

    verdicts = []
    for parts, name in [([p], p) for p in run.instances] + [(run.instances, "gateways together")]:
        first = mean_rss(parts, begin, begin + MINUTE)
        last = mean_rss(parts, end - MINUTE, end)
        allowed = max(FLAT_FRACTION * first, FLAT_BYTES)
        verdicts.append(Flatness(name, first, last, allowed, trend(parts)))
    return verdicts


# ---- the Markdown ----


def ms(value: float) -> str:
    return f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def latency_table(run: Run) -> list[str]:
    measured = run.seconds - run.warmup
    lines = [
        "| kind | rate /s | sent | answered/s | MiB/s | p50 ms | p90 ms | p99 ms | p99.9 ms "
        "| max ms | errors |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    recorder = run.recorder
    first = int(run.warmup // recorder.interval)
    last = int(run.seconds // recorder.interval)
    for kind in recorder.kinds:
        said = recorder.percentiles(kind)
        done = sum(c for n, c in recorder.completed[kind].items() if first <= n < last)
        size = sum(c for n, c in recorder.sizes[kind].items() if first <= n < last)
        span = (last - first) * recorder.interval or measured
        errors = sum(c for (k, _), c in recorder.errors.items() if k == kind)
        rate = run.rates.get(kind, run.rates.get("delete", 0.0) if kind == "revoked link" else 0)
        lines.append(
            f"| {kind} | {rate:g} | {recorder.sent[kind]:,} | {done / span:,.1f} | "
            f"{size / span / MIB:,.2f} | {ms(said[50.0])} | {ms(said[90.0])} | {ms(said[99.0])} | "
            f"{ms(said[99.9])} | {ms(said[100.0])} | {errors} |"
        )
    return lines


def usage_table(run: Run) -> list[str]:
    figures = cpu_and_rss(run)
    lines = [
        "| process (with its children) | CPU, mean | CPU, busiest 5 s | RSS after warm-up "
        "| RSS at the end | RSS peak |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for part, each in figures.items():
        cpu = f"{each['cpu']:.0%} of a core"
        if "rss_first" not in each:
            lines.append(f"| {part} | {cpu} | | | | |")
            continue
        if part == "postgres":
            rss = ["(shared memory, not summed)"] * 3
        else:
            rss = [f"{each[k] / MIB:,.0f} MiB" for k in ("rss_first", "rss_last", "rss_peak")]
        lines.append(f"| {part} | {cpu} | {each['cpu_peak']:.0%} | {' | '.join(rss)} |")
    return lines


def load_notes(run: Run) -> list[str]:
    late = run.recorder.lateness
    notes = [
        "How closely the load generator kept its schedule: requests left "
        f"{late.get_value_at_percentile(50) / 1000:.2f} ms after their planned time at the "
        f"median, {late.get_value_at_percentile(99) / 1000:.2f} ms at p99 and "
        f"{late.get_max_value() / 1000:.1f} ms at worst. Lateness counts in the latencies "
        "above, as a real client's waiting would."
    ]
    figures = cpu_and_rss(run)
    machine = figures.get("machine: every process, other work included", {}).get("cpu", 0.0)
    cores = os.cpu_count() or 1
    if machine > 0.9 * cores:
        other = figures["other work on the machine, not part of the run"]["cpu"]
        notes += [
            "",
            f"**The machine was saturated**: {machine:.0%} of a core busy on average out of "
            f"{cores:.0%}, {other:.0%} of it work that is not part of this run (another "
            "job on the same machine). The run's own processes had what was left, so these "
            "latencies are higher than the same load gets on a quiet machine.",
        ]
    return notes


def metrics_lines(run: Run) -> list[str]:
    answered = [s for s in run.scrapes if s.totals is not None]
    if not answered:
        return [
            "No instance answered on its `GATEWAY_METRICS_ADDRESS` (tried every 5 s, "
            f"{len(run.scrapes)} times in all): a build without the metrics endpoint ignores "
            "that setting. The figures above come from the load generator and psutil.",
        ]
    lines = [
        "Totals each instance's `/metrics` gave at its last answer during the run (summed "
        "over labels; with several workers, what the endpoint that answered counts):",
        "",
        "| instance | "
        + " | ".join(f"`{name}`" for name in sorted(answered[0].totals or {}))
        + " |",
        "| --- |" + " ---: |" * len(answered[0].totals or {}),
    ]
    last: dict[str, Scrape] = {}
    for scrape in answered:
        last[scrape.instance] = scrape
    for instance, scrape in last.items():
        totals = scrape.totals or {}
        lines.append(
            f"| {instance} | " + " | ".join(f"{totals[k]:,.3f}" for k in sorted(totals)) + " |"
        )
    missed = len(run.scrapes) - len(answered)
    lines += ["", f"{len(answered)} scrapes answered, {missed} did not."]
    return lines


def write(run: Run, folder: Path, name: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    pictures = {
        "latency": f"{run.prefix}latency.png",
        "throughput": f"{run.prefix}throughput.png",
        "rss": f"{run.prefix}rss.png",
        "cpu": f"{run.prefix}cpu.png",
    }
    plots.latency(run, folder / pictures["latency"])
    plots.throughput(run, folder / pictures["throughput"])
    plots.usage(run, folder / pictures["rss"], folder / pictures["cpu"])
    errors = sorted(run.recorder.errors.items(), key=lambda item: (-item[1], item[0]))
    out = [
        f"# {run.title}",
        "",
        f"`{run.command}` on {run.date}, at commit `{run.commit}`; the run took "
        f"{run.took / 60:.1f} minutes, set-up included. {run.seconds:g} s of load, of which the "
        f"first {run.warmup:g} s are warm-up: their latencies are plotted but left out of the "
        "percentiles below (their errors are not).",
        "",
        (
            "The short run of the same mix is in [README.md](README.md) (`make loadtest`)."
            if run.soak
            else "The same mix for 10 minutes, with a verdict on memory: [soak.md](soak.md) "
            "(`make soak`)."
        ),
        "",
        "## Setup",
        "",
        f"- **Machine**: {run.machine}.",
        *(f"- **{part}**: {what}" for part, what in run.versions.items()),
        "- **Processes**, all on loopback:",
        *(f"  - {line}" for line in run.processes),
        f"- **Data**: {run.data}",
        "- **Load generator**: `benchmarks/loadtest/driver.py`, an aiohttp client in a process "
        "of its own, open loop: every request is sent at its planned time on a fixed "
        "schedule per kind, whether or not earlier ones were answered, and its latency "
        "counts from that planned time (wrk2's way of avoiding coordinated omission), into "
        "HdrHistograms (1 µs to 60 s, 3 significant digits). Each answer is checked "
        "(status, `Location`, `Content-Range`, body length, page size); anything else is "
        "an error.",
        "",
        "| kind | rate /s | what it is |",
        "| --- | ---: | --- |",
        *(
            f"| {kind} | {run.rates.get(kind, run.rates.get('delete', 0.0)):g} | "
            f"{run.meaning[kind]} |"
            for kind in run.recorder.kinds
        ),
        "",
        "The nginx site is `deploy/nginx.conf` as shipped, with these lines replaced and "
        "nothing else (the load test stops if any of them is not found in the shipped file):",
        "",
        "| shipped | in the run |",
        "| --- | --- |",
        *(
            f"| `{a.strip()}` | {f'`{b.strip()}`' if b else 'dropped'} |"
            for a, b in run.site_changes
        ),
        "",
        "## Latency and throughput",
        "",
        "Percentiles over the measured part, in milliseconds from each request's planned "
        "send time; throughput is answers per second and MiB/s of bodies received over the "
        "same part.",
        "",
        *latency_table(run),
        "",
        "## Errors",
        "",
        *(
            ["None: every answer was the one expected, and every revoked link was refused."]
            if not errors
            else [
                "| kind | what | count |",
                "| --- | --- | ---: |",
                *(f"| {kind} | {what} | {count} |" for (kind, what), count in errors),
                "",
                "The first of them, by planned send time:",
                "",
                *(
                    f"- {when:.1f} s, {kind}: {what.replace('|', '/')}"
                    for when, kind, what in run.recorder.incidents[:10]
                ),
            ]
        ),
        "",
        *(
            [
                "The gateways' and nginx's logs had lines reporting problems: "
                + "; ".join(f"{part}: {len(lines)}" for part, lines in run.log_problems.items())
                + ". The first of them:",
                "",
                "```",
                *[line for lines in run.log_problems.values() for line in lines[:5]],
                "```",
            ]
            if any(run.log_problems.values())
            else ["No error lines in the gateways' or nginx's logs."]
        ),
        "",
        "## CPU and memory",
        "",
        "Sampled every second with psutil over the measured part; each process's figures "
        "include its children (a gateway is gunicorn's arbiter and its workers; nginx its "
        "master and worker; PostgreSQL its postmaster and every backend). 100% is one core; "
        "the machine has "
        f"{run.machine.split(' cores')[0].rsplit(', ', 1)[-1]}.",
        "",
        *usage_table(run),
        "",
        *load_notes(run),
        "",
    ]
    if run.soak:
        verdicts = flatness(run)
        out += [
            "## Did memory stay flat?",
            "",
            f"Mean RSS in the first minute after warm-up against the last minute; flat if it "
            f"grew by at most {FLAT_FRACTION:.0%} or {FLAT_BYTES // MIB} MiB, whichever is "
            "larger.",
            "",
            "| gateway | first minute | last minute | change | allowed | flat? | trend |",
            "| --- | ---: | ---: | ---: | ---: | --- | ---: |",
            *(
                f"| {v.part} | {v.first / MIB:,.1f} MiB | {v.last / MIB:,.1f} MiB | "
                f"{(v.last - v.first) / MIB:+,.1f} MiB | {v.allowed / MIB:,.1f} MiB | "
                f"{'yes' if v.flat else '**no**'} | {v.trend / MIB:+.2f} MiB/min |"
                for v in verdicts
            ),
            "",
            "The trend is the slope of a straight line fitted to every sample after the "
            "warm-up. A steady climb that stays within the tolerance over 10 minutes would "
            "still add up over hours: the plot shows whether it levels off; a longer run "
            "(`make soak ARGS=--seconds=3000`, 50 minutes) tells.",
            "",
        ]
    out += [
        "## The metrics endpoint",
        "",
        *metrics_lines(run),
        "",
    ]
    if run.s3:
        out += [
            "## Why SeaweedFS and not moto",
            "",
            "moto's S3 server reads the whole object for every ranged GET, so a player's small "
            "range of a large recording costs it what the recording weighs. Measured at the "
            "start of this run, with a warm aiobotocore client, one range at a time:",
            "",
            "| S3 server | object | 1 KiB ranges | median | p90 | max |",
            "| --- | ---: | ---: | ---: | ---: | ---: |",
            *(
                f"| {t.server} | {t.object_mib} MiB | {t.ranges} | {ms(t.median_ms)} ms | "
                f"{ms(t.p90_ms)} ms | {ms(t.max_ms)} ms |"
                for t in run.s3
            ),
            "",
        ]
    out += [
        "## Plots",
        "",
        f"![Latency percentiles over time, per kind]({pictures['latency']})",
        "",
        f"![Throughput over time]({pictures['throughput']})",
        "",
        f"![Resident memory over time]({pictures['rss']})",
        "",
        f"![CPU over time]({pictures['cpu']})",
        "",
    ]
    path = folder / name
    path.write_text("\n".join(out))
    return path
