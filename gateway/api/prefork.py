"""`gateway serve` on several cores: gunicorn's pre-fork arbiter over aiohttp's uvloop
worker. Each worker runs the application and server one process runs (its own loop,
pools and background tasks); the arbiter shares the port, replaces a worker that dies
and on SIGTERM gives the workers GATEWAY_SHUTDOWN_GRACE to drain."""

from __future__ import annotations

import math
import os
import queue
import shutil
import signal
from collections.abc import Awaitable, Callable
from typing import Any, Final

from aiohttp import web
from gunicorn.app.base import BaseApplication

from gateway import metrics
from gateway.api.server import gateway_runner

# A worker whose loop has not come round for this long is stuck: the arbiter kills it
# and starts another. aiohttp's worker checks in every second.
STUCK_AFTER: Final = 30
CLOSING_TIME: Final = 5


# What stops a worker; gunicorn's arbiter sends SIGTERM.
STOPPING: Final = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT)


def remember_early_signals(arbiter: Any, worker: Any) -> None:
    """In a new worker (gunicorn's post_fork): until it sets its own signal handlers,
    the arbiter's are in place, and they queue what arrives on the worker's copy of the
    arbiter's queue, which also holds what the arbiter had not yet handled when it
    forked. A SIGTERM sent as the worker was being born lands there."""
    worker.early_signals = arbiter.SIG_QUEUE


def stop_if_stopped_early(worker: Any) -> None:
    """Once the worker's handlers are set (gunicorn's post_worker_init): a stop that
    came before them stops it as soon as it has started, or it would serve on until
    killed at the end of the grace. Sending the signal again would not do: uvloop
    hears no signal before its loop runs."""
    early = getattr(worker, "early_signals", None)
    if not isinstance(early, queue.SimpleQueue):
        return
    while True:
        try:
            received = early.get_nowait()
        except queue.Empty:
            return
        if received in STOPPING:
            worker.alive = False  # aiohttp's worker cleans up and exits once set up
            return


class _Arbiter(BaseApplication):  # type: ignore[misc]
    def __init__(
        self, options: dict[str, Any], runner: Callable[[], Awaitable[web.AppRunner]]
    ) -> None:
        self._options, self._runner = options, runner
        super().__init__()

    def load_config(self) -> None:
        for name, value in self._options.items():
            self.cfg.set(name, value)

    def load(self) -> Callable[[], Awaitable[web.AppRunner]]:
        # aiohttp's worker awaits this in each worker, after the fork.
        return self._runner


def run_workers(
    make_app: Callable[[], web.Application],
    host: str,
    port: int,
    *,
    workers: int,
    header_timeout: float,
    shutdown_grace: float,
    announce: Callable[[str], None],
    log_format: str = "text",
    metrics_address: tuple[str, int] | None = None,
) -> None:
    """Serve with `workers` processes until SIGTERM or SIGINT, then drain them; with
    `metrics_address`, the arbiter serves the sum of the workers' metrics there."""
    folder = metrics.shared_folder() if metrics_address else None
    stop_metrics: list[Callable[[], None]] = []

    async def runner() -> web.AppRunner:
        return gateway_runner(
            make_app(),
            header_timeout=header_timeout,
            shutdown_grace=shutdown_grace,
            handle_signals=False,  # the worker's own handlers stop it
            log_format=log_format,
        )

    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    options = {
        "bind": address,
        "workers": workers,
        "worker_class": "aiohttp.GunicornUVLoopWebWorker",
        # Workers cut requests at the grace; then they close their pools and stores.
        "graceful_timeout": math.ceil(shutdown_grace) + CLOSING_TIME,
        "timeout": STUCK_AFTER,
        "accesslog": None,  # each worker's RouteAccessLog writes it
        "errorlog": "-",
        "proc_name": "gateway",
        "control_socket_disable": True,  # gunicorn's control socket under $HOME: unused
    }

    def ready(arbiter: object) -> None:
        if metrics_address and folder:
            stop_metrics.append(metrics.serve_shared(metrics_address, folder))
        announce(
            f"======== Running on http://{address} with {workers} workers ========\n"
            "(Press CTRL+C to quit)"
        )

    def worker_exited(arbiter: object, worker: Any) -> None:
        if folder:
            metrics.worker_gone(worker.pid, folder)

    options |= {
        "when_ready": ready,
        "child_exit": worker_exited,
        "post_fork": remember_early_signals,
        "post_worker_init": stop_if_stopped_early,
    }
    arbiter = os.getpid()
    try:
        _Arbiter(options, runner).run()
    finally:
        # A worker leaves run() too, by SystemExit, through here: only the arbiter tidies.
        if os.getpid() == arbiter:
            for stop in stop_metrics:
                stop()
            if folder:
                shutil.rmtree(folder, ignore_errors=True)
