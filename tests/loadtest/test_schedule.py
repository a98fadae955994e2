"""The load generator's open loop: requests go at their planned times, and latency counts
from those times, so a stalled server is charged for everything that queued behind it."""

from __future__ import annotations

import asyncio
import time

import pytest

from benchmarks.loadtest.schedule import Outcome, Recorder, intended_times, run_open_loop


def test_intended_times_are_evenly_spaced_at_the_rate() -> None:
    assert list(intended_times(4.0, 100.0, 1.0)) == [100.0, 100.25, 100.5, 100.75]


def test_intended_times_count_is_rate_times_seconds_despite_rounding() -> None:
    assert len(list(intended_times(10.0, 0.0, 0.3))) == 3


def test_latency_counts_from_the_intended_time_not_from_the_send() -> None:
    recorder = Recorder(("issuance",), start=10.0, interval=1.0)
    # Meant to go at 10.0, sent late and answered at 10.25: 250 ms, whatever the send time.
    latency = recorder.record("issuance", 10.0, 10.25, Outcome())
    assert latency == pytest.approx(0.25)
    assert recorder.whole["issuance"].get_max_value() == pytest.approx(250_000, rel=1e-3)


def test_warmup_latencies_stay_out_of_the_percentiles_but_their_errors_count() -> None:
    recorder = Recorder(("seek",), start=0.0, interval=1.0, warmup=5.0)
    recorder.record("seek", 1.0, 1.5, Outcome("status 503"))
    recorder.record("seek", 6.0, 6.01, Outcome())
    assert recorder.whole["seek"].get_total_count() == 1
    assert recorder.errors == {("seek", "status 503"): 1}
    assert sum(h.get_total_count() for h in recorder.intervals["seek"].values()) == 2


def test_recorder_survives_the_trip_between_processes() -> None:
    recorder = Recorder(("list", "delete"), start=0.0, interval=5.0, warmup=1.0)
    recorder.record("list", 2.0, 2.004, Outcome(None, 1200))
    recorder.record("delete", 3.0, 3.2, Outcome("status 500"))
    recorder.sent["list"] += 1
    again = Recorder.loads(recorder.dumps())
    assert again.percentiles("list") == recorder.percentiles("list")
    assert again.errors == recorder.errors
    assert again.sizes["list"] == {0: 1200}
    assert again.sent == recorder.sent


async def test_a_stalled_server_is_charged_for_every_request_planned_meanwhile() -> None:
    # A server that answers one request at a time, 20 ms each, asked 10 times 10 ms apart.
    one_at_a_time = asyncio.Lock()
    sent_at: list[float] = []

    async def send(kind: str, number: int) -> Outcome:
        sent_at.append(time.perf_counter())
        async with one_at_a_time:
            await asyncio.sleep(0.02)
        return Outcome()

    recorder = Recorder(("api",), start=time.perf_counter() + 0.01, interval=1.0)
    await run_open_loop({"api": 100.0}, 0.1, send, recorder)

    planned = list(intended_times(100.0, recorder.start, 0.1))
    assert len(sent_at) == 10
    # Sent on schedule, not after the answer before (a closed loop sends the last at 180 ms).
    assert max(sent - plan for sent, plan in zip(sent_at, planned, strict=True)) < 0.05
    # The last, planned at 90 ms, is answered after the nine before it (200 ms): 110 ms,
    # where timing from its send would say 20 ms.
    assert recorder.whole["api"].get_max_value() >= 105_000
    assert recorder.errors == {}


async def test_a_failing_request_is_an_error_and_the_loop_goes_on() -> None:
    async def send(kind: str, number: int) -> Outcome:
        if number == 0:
            raise ConnectionResetError("reset by peer")
        return Outcome()

    recorder = Recorder(("seek",), start=time.perf_counter(), interval=1.0)
    await run_open_loop({"seek": 100.0}, 0.05, send, recorder)
    assert recorder.errors == {("seek", "ConnectionResetError"): 1}
    assert [(kind, what) for _, kind, what in recorder.incidents] == [
        ("seek", "ConnectionResetError reset by peer")
    ]
    assert recorder.whole["seek"].get_total_count() == 5
