"""What the gateway counts, for Prometheus: one `Metrics` a process, handed to whatever
counts something. Without GATEWAY_METRICS_ADDRESS it is `Metrics.off()`, whose every
instrument does nothing, and storage and database calls are not wrapped at all.

Label values are bounded: route templates, never paths (a media link's path is its
credential), SIDs or tokens; a method outside HTTP's own is counted as `_OTHER`.

prometheus_client chooses between in-process values and the files shared by several
workers when it is first imported, from PROMETHEUS_MULTIPROC_DIR: so it is imported
here only once a process knows which it is (`gateway.api.prefork` sets the folder
before any worker starts)."""

from __future__ import annotations

import asyncio
import inspect
import os
import tempfile
import time
from bisect import bisect_left
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Final, Protocol, TypeVar, cast

from gateway.config import Settings
from gateway.storage import MediaStorage
from gateway.store import MetadataStore

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from gateway.janitor import Sweep

# OpenTelemetry's advice for http.server.request.duration, in seconds.
DURATION_BUCKETS: Final = (
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
)  # fmt: skip
# From a JSON answer to a whole recording.
SIZE_BUCKETS: Final = tuple(float(4**n) for n in range(5, 17))  # 1 KiB … 4 GiB
# A primary-key read takes well under a millisecond; an S3 call some milliseconds.
OPERATION_BUCKETS: Final = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
METHODS: Final = frozenset(
    ("GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "CONNECT", "TRACE")
)
# prometheus_client's own switch to values kept in files, one per process and metric kind.
MULTIPROCESS_FOLDER: Final = "PROMETHEUS_MULTIPROC_DIR"
# What a media link's redemption ended in.
SERVED, EXPIRED, REFUSED, REVOKED = "served", "expired", "refused", "revoked"


class _Instrument(Protocol):
    def labels(self, *values: str) -> _Instrument: ...
    def inc(self, amount: float = 1) -> None: ...
    def dec(self, amount: float = 1) -> None: ...
    def set(self, value: float) -> None: ...
    def observe(self, amount: float) -> None: ...


class _Off:
    """An instrument that counts nothing, for a process without a metrics listener."""

    def labels(self, *values: str) -> _Off:
        return self

    def inc(self, amount: float = 1) -> None:
        pass

    dec = inc
    set = inc
    observe = inc


_OFF: Final = _Off()
# How often counts kept on the event loop's thread reach prometheus_client's series.
FLUSH_SECONDS: Final = 1.0


class _Tally:
    """One series' counts in plain numbers, changed only on the event loop's thread and
    added to prometheus_client's series at each flush: a request's counting costs
    additions, not a lock per count (and, with workers, a write to a shared file)."""

    __slots__ = ()

    def flush(self) -> None:
        raise NotImplementedError


class _CountTally(_Tally):
    __slots__ = ("_count", "_series")

    def __init__(self, series: Any) -> None:
        self._series, self._count = series, 0.0

    def inc(self, amount: float = 1) -> None:
        self._count += amount

    def flush(self) -> None:
        if self._count:
            count, self._count = self._count, 0.0
            self._series.inc(count)


class _LevelTally(_Tally):
    __slots__ = ("_level", "_series", "_shown")

    def __init__(self, series: Any) -> None:
        self._series, self._level, self._shown = series, 0.0, 0.0

    def inc(self, amount: float = 1) -> None:
        self._level += amount

    def dec(self, amount: float = 1) -> None:
        self._level -= amount

    def flush(self) -> None:
        if self._level != self._shown:
            self._shown = self._level
            self._series.set(self._level)


class _HistogramTally(_Tally):
    """prometheus_client keeps a histogram as one count per bucket, not cumulated, and a
    sum (`_buckets`, `_sum`: the layout every version has had); a flush adds to them."""

    __slots__ = ("_bounds", "_counts", "_series", "_sum")

    def __init__(self, series: Any) -> None:
        self._series, self._bounds = series, tuple(series._upper_bounds)
        self._counts, self._sum = [0] * len(self._bounds), 0.0

    def observe(self, amount: float) -> None:
        self._counts[bisect_left(self._bounds, amount)] += 1  # `le`: the first bound ≥ it
        self._sum += amount

    def flush(self) -> None:
        if not any(self._counts):
            return
        counts, self._counts = self._counts, [0] * len(self._bounds)
        total, self._sum = self._sum, 0.0
        for bucket, count in zip(self._series._buckets, counts, strict=True):
            if count:
                bucket.inc(count)
        self._series._sum.inc(total)


class Metrics:
    def __init__(
        self, registry: CollectorRegistry | None, storage_kind: str = "", database_kind: str = ""
    ) -> None:
        self.registry = registry
        self.enabled = registry is not None
        self._storage, self._database = storage_kind, database_kind
        prom: Any = None
        if registry is not None:
            import prometheus_client as prom

            prom.disable_created_metrics()  # a _created series for each: noise to scrape

        def made(kind: str, name: str, doc: str, *labels: str, **more: Any) -> _Instrument:
            if prom is None:
                return _OFF
            instrument = getattr(prom, kind)(name, doc, labels, registry=registry, **more)
            return cast(_Instrument, instrument)

        request = ("http_request_method", "http_route", "http_response_status_class")

        self.request_duration: _Instrument = made(
            "Histogram", "http_server_request_duration_seconds",
            "Time from a request's headers to the end of its answer.",
            *request, buckets=DURATION_BUCKETS,
        )  # fmt: skip
        self.response_size: _Instrument = made(
            "Histogram", "http_server_response_body_size_bytes",
            "Bytes of each answer's body.", *request, buckets=SIZE_BUCKETS,
        )  # fmt: skip
        self.active_requests: _Instrument = made(
            "Gauge", "http_server_active_requests", "Requests being answered.",
            multiprocess_mode="livesum",
        )  # fmt: skip
        self.active_downloads: _Instrument = made(
            "Gauge", "gateway_media_downloads_active", "Media answers being streamed.",
            "storage", multiprocess_mode="livesum",
        )  # fmt: skip
        self.media_sent: _Instrument = made(
            "Counter", "gateway_media_sent_bytes", "Media bytes sent to clients.", "storage"
        )
        self.links_issued: _Instrument = made(
            "Counter", "gateway_media_links_issued", "Media links handed out by /Media.", "kind"
        )
        self.links_redeemed: _Instrument = made(
            "Counter", "gateway_media_links_redeemed",
            "Media links followed, by outcome: served, expired, refused (not a valid "
            "link) or revoked (the recording is deleted or gone).", "outcome",
        )  # fmt: skip
        self.storage_duration: _Instrument = made(
            "Histogram", "gateway_storage_operation_duration_seconds",
            "Time each media storage call took.", "storage", "operation",
            buckets=OPERATION_BUCKETS,
        )  # fmt: skip
        self.storage_errors: _Instrument = made(
            "Counter", "gateway_storage_operation_errors",
            "Media storage calls that raised, by what they raised.",
            "storage", "operation", "error_type",
        )  # fmt: skip
        self.database_duration: _Instrument = made(
            "Histogram", "gateway_database_operation_duration_seconds",
            "Time each metadata store call took.", "database", "operation",
            buckets=OPERATION_BUCKETS,
        )  # fmt: skip
        self.database_errors: _Instrument = made(
            "Counter", "gateway_database_operation_errors",
            "Metadata store calls that raised, by what they raised.",
            "database", "operation", "error_type",
        )  # fmt: skip
        self.callbacks: _Instrument = made(
            "Counter", "gateway_callback_deliveries",
            "Status callback attempts, by outcome: delivered, retrying or abandoned.", "outcome",
        )  # fmt: skip
        self.callback_backlog: _Instrument = made(
            "Gauge", "gateway_callback_outbox_backlog",
            "Status callbacks waiting to be delivered, as last counted.",
            multiprocess_mode="livemostrecent",
        )  # fmt: skip
        self.sweeps: _Instrument = made(
            "Counter", "gateway_janitor_sweeps",
            "Janitor sweeps, by whether this process ran it or another instance was sweeping.",
            "outcome",
        )  # fmt: skip
        self.swept: _Instrument = made(
            "Counter", "gateway_janitor_removed",
            "What sweeps removed: media of deleted recordings, deleted recordings purged "
            "past retention, leftover media no recording claims.", "what",
        )  # fmt: skip
        self.uploads: _Instrument = made(
            "Counter", "gateway_recorder_uploads", "Recorder media uploads stored."
        )
        self.upload_bytes: _Instrument = made(
            "Counter", "gateway_recorder_upload_bytes", "Bytes of recorder media uploads stored."
        )
        # What every request counts is tallied (and its children bound) once: a request
        # costs a dict lookup and additions, not prometheus_client's label checks and locks.
        self._tallies: list[_Tally] = []
        self._per_route: dict[tuple[str, str, int], tuple[_Instrument, _Instrument]] = {}
        self.requests_in_flight = self._tallied(_LevelTally, self.active_requests)
        self._downloading = self._tallied(_LevelTally, self.active_downloads.labels(storage_kind))
        self._sent = self._tallied(_CountTally, self.media_sent.labels(storage_kind))
        self._issued = {
            kind: self._tallied(_CountTally, self.links_issued.labels(kind))
            for kind in ("signed", "presigned")
        }
        self._redeemed = {
            outcome: self._tallied(_CountTally, self.links_redeemed.labels(outcome))
            for outcome in (SERVED, EXPIRED, REFUSED, REVOKED)
        }

    @classmethod
    def off(cls) -> Metrics:
        return cls(None)

    @classmethod
    def for_settings(cls, settings: Settings) -> Metrics:
        """Counting, in a registry of its own, when the settings name a metrics listener."""
        if settings.metrics_address is None:
            return cls.off()
        from prometheus_client import CollectorRegistry

        storage = "s3" if settings.storage_url.startswith("s3://") else "local"
        database = "sqlite" if settings.uses_sqlite else "postgresql"
        return cls(CollectorRegistry(auto_describe=True), storage, database)

    def _tallied(self, kind: type[_Tally], series: _Instrument) -> _Instrument:
        if not self.enabled:
            return series  # _OFF
        tally = kind(series)  # type: ignore[call-arg]
        self._tallies.append(tally)
        return cast(_Instrument, tally)

    def flush(self) -> None:
        """Hand what was counted since the last flush to prometheus_client."""
        for tally in self._tallies:
            tally.flush()

    async def flush_now_and_then(self) -> None:
        """Flush every FLUSH_SECONDS until cancelled, and once more then."""
        try:
            while True:
                await asyncio.sleep(FLUSH_SECONDS)
                self.flush()
        finally:
            self.flush()

    def request_done(self, method: str, route: str, status: int, size: int, seconds: float) -> None:
        key = (method if method in METHODS else "_OTHER", route, status)
        children = self._per_route.get(key)
        if children is None:
            values = (key[0], route, f"{status // 100}xx")
            children = (
                self._tallied(_HistogramTally, self.request_duration.labels(*values)),
                self._tallied(_HistogramTally, self.response_size.labels(*values)),
            )
            self._per_route[key] = children
        children[0].observe(seconds)
        children[1].observe(size)

    def download_started(self) -> None:
        self._downloading.inc()

    def download_finished(self) -> None:
        self._downloading.dec()

    def media_sent_now(self, size: int) -> None:
        """Counted as each piece goes out, so a long download shows as it runs."""
        self._sent.inc(size)

    def link_issued(self, kind: str) -> None:
        """`kind`: signed (this service's link) or presigned (the storage's own URL)."""
        self._issued[kind].inc()

    def link_redeemed(self, outcome: str) -> None:
        self._redeemed[outcome].inc()

    def callback_attempted(self, outcome: str) -> None:
        self.callbacks.labels(outcome).inc()

    def sweep_done(self, sweep: Sweep) -> None:
        self.sweeps.labels("ran" if sweep.ran else "skipped").inc()
        self.swept.labels("media").inc(sweep.media_deleted)
        self.swept.labels("recordings").inc(sweep.purged)

    def leftovers_removed(self, count: int) -> None:
        self.swept.labels("leftovers").inc(count)

    def upload_stored(self, size: int) -> None:
        self.uploads.inc()
        self.upload_bytes.inc(size)

    def timed_store(self, store: MetadataStore) -> MetadataStore:
        """`store`, each of its calls timed, or `store` itself when not counting."""
        if not self.enabled:
            return store
        timed = _Timed(store, _calls(MetadataStore), self._database, self._durations(
            self.database_duration), self.database_errors)  # fmt: skip
        return cast(MetadataStore, timed)

    def timed_storage(self, storage: MediaStorage) -> MediaStorage:
        if not self.enabled:
            return storage
        timed = _Timed(storage, _calls(MediaStorage), self._storage, self._durations(
            self.storage_duration), self.storage_errors)  # fmt: skip
        return cast(MediaStorage, timed)

    def _durations(self, histogram: _Instrument) -> Callable[..., _Instrument]:
        def series(*values: str) -> _Instrument:
            return self._tallied(_HistogramTally, histogram.labels(*values))

        return series


def _calls(protocol: type) -> tuple[str, ...]:
    """The Protocol's coroutine methods but aclose: the calls worth timing."""
    return tuple(
        name
        for name, member in vars(protocol).items()
        if inspect.iscoroutinefunction(member) and name != "aclose"
    )


T = TypeVar("T")


class _Timed:
    """Another object's calls, each timed and its errors counted by type; every other
    attribute is the object's own."""

    def __init__(
        self,
        target: object,
        calls: tuple[str, ...],
        system: str,
        duration: Callable[..., _Instrument],
        errors: _Instrument,
    ) -> None:
        self._target = target
        for name in calls:
            observe = duration(system, name).observe
            failed = _errors_of(errors, system, name)
            setattr(self, name, _timed(getattr(target, name), observe, failed))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._target, name)


def _errors_of(errors: _Instrument, system: str, call: str) -> Callable[[BaseException], None]:
    def failed(exc: BaseException) -> None:
        errors.labels(system, call, type(exc).__name__).inc()

    return failed


def _timed(
    call: Callable[..., Awaitable[T]],
    observe: Callable[[float], None],
    failed: Callable[[BaseException], None],
) -> Callable[..., Awaitable[T]]:
    clock = time.perf_counter

    async def timed(*args: Any, **kwargs: Any) -> T:
        started = clock()
        try:
            return await call(*args, **kwargs)
        except Exception as exc:
            failed(exc)
            raise
        finally:
            observe(clock() - started)

    return timed


def serve(address: tuple[str, int], registry: CollectorRegistry) -> Callable[[], None]:
    """Serve `registry` at http://address/metrics from a thread of this process, which
    the event loop never waits on: how to stop it."""
    from prometheus_client import start_http_server

    host, port = address
    server, thread = start_http_server(port, host, registry)

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join()

    return stop


def shared_folder() -> str:
    """Make a folder for workers' metrics files and have prometheus_client use it: to be
    called before any Metrics is made and before the workers start."""
    folder = tempfile.mkdtemp(prefix="gateway-metrics-")
    os.environ[MULTIPROCESS_FOLDER] = folder
    return folder


def serve_shared(address: tuple[str, int], folder: str) -> Callable[[], None]:
    """Serve the sum of every worker's metrics (kept in `folder`)."""
    from prometheus_client import CollectorRegistry, multiprocess

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, folder)  # type: ignore[no-untyped-call]
    return serve(address, registry)


def worker_gone(pid: int, folder: str) -> None:
    """A worker exited: its in-flight gauges no longer count."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid, folder)  # type: ignore[no-untyped-call]
