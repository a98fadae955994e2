"""The open loop: each request goes at its planned time, whether or not the ones before it
were answered, and its latency counts from that planned time (as wrk2 does), so a server
that stalls is charged for every request that should have gone meanwhile rather than
for the one it was holding ("coordinated omission")."""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from hdrh.histogram import HdrHistogram

# Latencies in microseconds, from 1 µs to a minute, to three significant digits; two for
# each interval's, which only plots read (a tenth of the memory, over hundreds of them).
LOWEST: Final = 1
HIGHEST: Final = 60_000_000
DIGITS: Final = 3
INTERVAL_DIGITS: Final = 2
INCIDENTS: Final = 50  # errors kept with their details, the first ones
PERCENTILES: Final = (50.0, 90.0, 99.0, 99.9)


def intended_times(rate: float, start: float, seconds: float) -> Iterator[float]:
    """When each of the `seconds * rate` requests is meant to go: evenly spaced from `start`."""
    for number in range(math.floor(seconds * rate + 1e-9)):
        yield start + number / rate


def histogram(digits: int = DIGITS) -> HdrHistogram:
    return HdrHistogram(LOWEST, HIGHEST, digits)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one request came to: `error` says what was wrong with the answer (None when
    it was the one expected), the same words for the same failure so that they add up;
    `detail` what only this one had (a SID, a byte count); `size` the bytes of body."""

    error: str | None = None
    size: int = 0
    detail: str = ""


@dataclass
class Recorder:
    """Latencies per kind of request, for the whole measured run and per interval of the
    run (for plots over time), with what was completed and what went wrong.

    Times are seconds on one clock; `start` is when the first request was meant to go.
    The latencies of requests meant to go in the first `warmup` seconds count only in
    the intervals; their errors count."""

    kinds: tuple[str, ...]
    start: float
    interval: float
    warmup: float = 0.0
    whole: dict[str, HdrHistogram] = field(default_factory=dict)
    intervals: dict[str, dict[int, HdrHistogram]] = field(default_factory=dict)
    completed: dict[str, Counter[int]] = field(default_factory=dict)  # per interval
    sizes: dict[str, Counter[int]] = field(default_factory=dict)  # bytes, per interval
    errors: Counter[tuple[str, str]] = field(default_factory=Counter)
    sent: Counter[str] = field(default_factory=Counter)
    incidents: list[tuple[float, str, str]] = field(default_factory=list)  # when, kind, what
    # How late each request left against its plan: the load generator's own health.
    lateness: HdrHistogram = field(default_factory=histogram)

    def __post_init__(self) -> None:
        for kind in self.kinds:
            self.whole[kind] = histogram()
            self.intervals[kind] = {}
            self.completed[kind] = Counter()
            self.sizes[kind] = Counter()

    def record(self, kind: str, intended: float, done: float, outcome: Outcome) -> float:
        """Records one request meant to go at `intended` and answered (or given up on) at
        `done`; returns its latency in seconds, counted from `intended`."""
        latency = max(done - intended, 0.0)
        micros = min(max(round(latency * 1e6), LOWEST), HIGHEST)
        number = self.interval_of(intended)
        self.intervals[kind].setdefault(number, histogram(INTERVAL_DIGITS)).record_value(micros)
        if intended - self.start >= self.warmup:
            self.whole[kind].record_value(micros)
        if outcome.error is not None:  # warm-up or not, an error is an error
            self.errors[kind, outcome.error] += 1
            if len(self.incidents) < INCIDENTS:
                what = f"{outcome.error} {outcome.detail}".strip()
                self.incidents.append((intended - self.start, kind, what))
        finished = self.interval_of(done)
        self.completed[kind][finished] += 1
        self.sizes[kind][finished] += outcome.size
        return latency

    def left(self, intended: float, sent: float) -> None:
        micros = min(max(round((sent - intended) * 1e6), LOWEST), HIGHEST)
        self.lateness.record_value(micros)

    def interval_of(self, moment: float) -> int:
        return math.floor((moment - self.start) / self.interval)

    def percentiles(self, kind: str) -> dict[float, float]:
        """Milliseconds at each of PERCENTILES over the measured run, and at 100 (max)."""
        whole = self.whole[kind]
        said = {p: whole.get_value_at_percentile(p) / 1000 for p in PERCENTILES}
        return {**said, 100.0: whole.get_max_value() / 1000}

    # The load runs in a process of its own; its recorder comes back as JSON.

    def dumps(self) -> dict[str, Any]:
        def encoded(h: HdrHistogram) -> str:
            return h.encode().decode("ascii")

        return {
            "kinds": list(self.kinds),
            "start": self.start,
            "interval": self.interval,
            "warmup": self.warmup,
            "whole": {kind: encoded(h) for kind, h in self.whole.items()},
            "intervals": {
                kind: {str(n): encoded(h) for n, h in each.items()}
                for kind, each in self.intervals.items()
            },
            "completed": {kind: dict(each) for kind, each in self.completed.items()},
            "sizes": {kind: dict(each) for kind, each in self.sizes.items()},
            "errors": [[kind, what, count] for (kind, what), count in self.errors.items()],
            "sent": dict(self.sent),
            "lateness": encoded(self.lateness),
            "incidents": self.incidents,
        }

    @classmethod
    def loads(cls, data: Mapping[str, Any]) -> Recorder:
        recorder = cls(tuple(data["kinds"]), data["start"], data["interval"], data["warmup"])
        for kind in recorder.kinds:
            recorder.whole[kind] = HdrHistogram.decode(data["whole"][kind].encode("ascii"))
            recorder.intervals[kind] = {
                int(n): HdrHistogram.decode(h.encode("ascii"))
                for n, h in data["intervals"][kind].items()
            }
            recorder.completed[kind] = Counter(
                {int(n): c for n, c in data["completed"][kind].items()}
            )
            recorder.sizes[kind] = Counter({int(n): c for n, c in data["sizes"][kind].items()})
        recorder.errors = Counter({(kind, what): count for kind, what, count in data["errors"]})
        recorder.sent = Counter(data["sent"])
        recorder.lateness = HdrHistogram.decode(data["lateness"].encode("ascii"))
        recorder.incidents = [(when, kind, what) for when, kind, what in data["incidents"]]
        return recorder


Send = Callable[[str, int], Awaitable[Outcome]]


async def run_open_loop(
    rates: Mapping[str, float],
    seconds: float,
    send: Send,
    recorder: Recorder,
    *,
    max_in_flight: int = 1000,
    grace: float = 60.0,
    clock: Callable[[], float] = time.perf_counter,
) -> None:
    """Sends each kind's requests at its fixed rate for `seconds` from `recorder.start`
    (on `clock`), each by `send(kind, number)` in a task of its own, then
    waits at most `grace` seconds for those still unanswered, which are then given up on
    and counted as errors. Beyond `max_in_flight` unanswered, a request is not sent but
    counted as an error, at the latency it would have had by then.

    The clock is not the loop's: uvloop's counts whole milliseconds."""
    in_flight: set[asyncio.Task[None]] = set()

    async def one(kind: str, number: int, intended: float) -> None:
        try:
            outcome = await send(kind, number)
        except asyncio.CancelledError:
            recorder.record(kind, intended, clock(), Outcome("unanswered at the end"))
            raise
        except Exception as error:  # each failure is counted, and the loop goes on
            outcome = Outcome(type(error).__name__, detail=str(error)[:300])
        recorder.record(kind, intended, clock(), outcome)

    async def pace(kind: str, rate: float) -> None:
        for number, intended in enumerate(intended_times(rate, recorder.start, seconds)):
            wait = intended - clock()
            if wait > 0:
                await asyncio.sleep(wait)
            recorder.sent[kind] += 1
            recorder.left(intended, clock())
            if len(in_flight) >= max_in_flight:
                recorder.record(kind, intended, clock(), Outcome("not sent: too many unanswered"))
                continue
            task = asyncio.create_task(one(kind, number, intended))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)

    await asyncio.gather(*(pace(kind, rate) for kind, rate in rates.items() if rate > 0))
    if in_flight:
        _, late = await asyncio.wait(set(in_flight), timeout=grace)
        for task in late:
            task.cancel()
        if late:
            await asyncio.wait(late, timeout=5)
