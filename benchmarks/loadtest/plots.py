"""The load test's plots (matplotlib, PNG): latency percentiles per kind over time,
throughput, resident memory and CPU."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Final

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt
from matplotlib.ticker import FuncFormatter

from benchmarks.loadtest.sampling import other_work

if TYPE_CHECKING:
    from benchmarks.loadtest.report import Run

MIB: Final = 1024 * 1024


def seconds_axis(run: Run, ax: plt.Axes) -> None:
    ax.axvspan(0, run.warmup, color="0.9", label="warm-up")
    ax.set_xlim(0, run.seconds)
    ax.set_xlabel("seconds into the run")
    ax.grid(True, which="both", alpha=0.3)


def plain_numbers(ax: plt.Axes) -> None:
    """A log axis labelled 3, 10, 30 rather than in powers of ten."""
    ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))

    def minor(value: float, _: object) -> str:
        # Over a decade or more, only 2 and 5 between powers of ten (all would overlap);
        # within less than a decade, every tick, or one label or none would be left.
        low, high = ax.get_ylim()
        return f"{value:g}" if high < 10 * low or f"{value:.0e}"[0] in "25" else ""

    ax.yaxis.set_minor_formatter(FuncFormatter(minor))


def latency(run: Run, path: Path) -> None:
    kinds = run.recorder.kinds
    columns = 2
    rows = (len(kinds) + 1) // columns
    figure, axes = plt.subplots(rows, columns, figsize=(12, 3.2 * rows), sharex=True)
    for ax, kind in zip(axes.flat, kinds, strict=False):
        intervals = sorted(run.recorder.intervals[kind].items())
        times = [(n + 0.5) * run.recorder.interval for n, _ in intervals]
        for percentile, style in ((50.0, "-"), (99.0, "--"), (99.9, ":")):
            values = [h.get_value_at_percentile(percentile) / 1000 for _, h in intervals]
            ax.plot(times, values, style, label=f"p{percentile:g}")
        ax.set_yscale("log")
        plain_numbers(ax)
        ax.set_title(kind)
        ax.set_ylabel("ms from intended send")
        seconds_axis(run, ax)
    axes.flat[0].legend(loc="upper right", fontsize="small")
    figure.suptitle(
        f"{run.title}: latency per {run.recorder.interval:g} s interval "
        "(counted from each request's planned send time)"
    )
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


def throughput(run: Run, path: Path) -> None:
    figure, (requests, volume) = plt.subplots(2, 1, figsize=(12, 7), sharex=True)
    step = run.recorder.interval
    total: Counter[int] = Counter()
    for kind in run.recorder.kinds:
        done = run.recorder.completed[kind]
        numbers = sorted(n for n in done if n * step < run.seconds)
        requests.plot([(n + 0.5) * step for n in numbers], [done[n] / step for n in numbers],
                      label=kind)  # fmt: skip
        total.update(run.recorder.sizes[kind])
    numbers = sorted(n for n in total if n * step < run.seconds)
    volume.plot([(n + 0.5) * step for n in numbers], [total[n] / step / MIB for n in numbers])
    requests.set_ylabel("answers / s")
    requests.set_yscale("log")
    plain_numbers(requests)
    requests.legend(loc="center right", fontsize="small", ncol=3)
    volume.set_ylabel("MiB/s of bodies received")
    volume.set_ylim(bottom=0, top=max(total.values(), default=1) / step / MIB * 1.2)
    for ax in (requests, volume):
        seconds_axis(run, ax)
    requests.set_title(f"{run.title}: throughput per {step:g} s interval")
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


def usage(run: Run, rss_path: Path, cpu_path: Path) -> None:
    samples = run.samples
    times = [s.wall - run.wall_start for s in samples]
    parts = list(samples[0].parts) if samples else []
    figure, (gateways, every) = plt.subplots(2, 1, figsize=(12, 8), sharex=True)
    for part in parts:
        if part == "postgres":  # shared buffers counted once per backend: not meaningful
            continue
        rss = [s.parts[part].rss / MIB for s in samples]
        every.plot(times, rss, label=part)
        if part in run.instances:
            gateways.plot(times, rss, label=part)
    gateways.set_title(f"{run.title}: resident memory")
    gateways.set_ylabel("gateways' RSS, MiB")
    every.set_ylabel("RSS, MiB")
    for ax in (gateways, every):
        seconds_axis(run, ax)
        ax.set_xlim(min(times, default=0), max(times, default=run.seconds))
        ax.legend(loc="center right", fontsize="small")
    every.set_ylim(bottom=0)
    figure.tight_layout()
    figure.savefig(rss_path, dpi=90)
    plt.close(figure)

    figure, ax = plt.subplots(figsize=(12, 4.5))
    window = 5
    pairs = list(zip(samples, samples[window:], strict=False))
    middle = [(a.wall + b.wall) / 2 - run.wall_start for a, b in pairs]
    for part in parts:
        ax.plot(middle, [(b.parts[part].cpu - a.parts[part].cpu) / (b.wall - a.wall)
                         for a, b in pairs], label=part)  # fmt: skip
    ax.plot(middle, [(b.machine_busy - a.machine_busy) / (b.wall - a.wall) for a, b in pairs],
            "k--", label="machine: every process, other work included")  # fmt: skip
    ax.plot(middle, [other_work(a, b) for a, b in pairs], "k:", label="other work")
    ax.set_ylabel(f"CPU, cores (mean over {window} s)")
    ax.set_title(f"{run.title}: CPU")
    seconds_axis(run, ax)
    ax.set_xlim(min(times, default=0), max(times, default=run.seconds))
    ax.set_ylim(0, (os.cpu_count() or 2) * 1.35)  # room above the lines for the legend
    ax.legend(loc="upper right", fontsize="small", ncol=3)
    figure.tight_layout()
    figure.savefig(cpu_path, dpi=90)
    plt.close(figure)
