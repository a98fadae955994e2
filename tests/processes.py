"""The real `gateway` command, run as operators run it."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def gateway(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def ok(env: dict[str, str], *args: str) -> Any:
    """The JSON a command printed; fails the test if it did not succeed."""
    done = gateway(env, *args)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def refused(env: dict[str, str], *args: str) -> str:
    """The one line a command printed as it refused; fails the test otherwise."""
    done = gateway(env, *args)
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1, done.stderr  # one line, no traceback
    return done.stderr


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True, slots=True)
class Served:
    base_url: str
    printed: list[str]  # what it printed before it started answering
    process: subprocess.Popen[str]
    # Everything it printed, read as it comes so that a full pipe never stalls it.
    output: list[str]

    @property
    def pid(self) -> int:
        return self.process.pid


@contextmanager
def serving(env: dict[str, str], *args: str, cwd: Path | None = None) -> Iterator[Served]:
    """`gateway serve` in its own process until the block ends."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway", "serve", "--port", str(port), *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    drain: threading.Thread | None = None
    try:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            if "Running on" in line:
                break
        else:
            raise AssertionError("gateway serve stopped:\n" + "".join(lines))
        output = list(lines)
        drain = threading.Thread(target=output.extend, args=(process.stdout,), daemon=True)
        drain.start()
        yield Served(f"http://127.0.0.1:{port}", lines, process, output)
    finally:
        process.terminate()
        process.wait(timeout=10)
        if drain is not None:
            drain.join(timeout=10)
        if process.stdout is not None:
            process.stdout.close()
