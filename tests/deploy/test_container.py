"""The image's own command line, ENTRYPOINT then CMD, run as a process on this machine
with the environment compose or the ConfigMap gives it, moved onto loopback, a
temporary folder and free ports: it starts, answers the probes, and stops on SIGTERM."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Final, TypeAlias

import psutil
import pytest

from gateway.config import Settings
from tests.deploy.files import (
    COMPOSE,
    KUBERNETES,
    TOP,
    compose,
    environment,
    final_stage,
    kustomize,
    one,
)
from tests.processes import free_port

KEY: Final = "container-test-signing-key-0123456789"
Launch: TypeAlias = tuple[dict[str, str], list[str]]  # environment, argv
Started: TypeAlias = tuple[dict[str, str], subprocess.Popen[str], list[str]]
# S3, PostgreSQL and their credentials are swapped for SQLite and a folder here.
SHARED_BACKENDS: Final = ("GATEWAY_S3_ENDPOINT_URL", "AWS_")


def from_compose(tmp_path: Path) -> tuple[dict[str, str], list[str] | None]:
    service = compose()["services"]["gateway-1"]
    env = environment(service)
    secret = Path(env["GATEWAY_SIGNING_KEYS_FILE"]).name
    copy = tmp_path / "secrets" / secret  # as compose mounts it, but under tmp_path
    copy.parent.mkdir()
    shutil.copy(COMPOSE.parent / compose()["secrets"][secret]["file"], copy)
    env["GATEWAY_SIGNING_KEYS_FILE"] = str(copy)
    return env, service.get("command")


def from_kubernetes(tmp_path: Path) -> tuple[dict[str, str], list[str] | None]:
    manifests = kustomize(KUBERNETES / "base")
    env = dict(one(manifests, "ConfigMap")["data"])
    # The Secret example holds placeholders only; a real key stands in for them.
    env["GATEWAY_SIGNING_KEYS"] = KEY
    (container,) = one(manifests, "Deployment")["spec"]["template"]["spec"]["containers"]
    # Kubernetes' `command` replaces ENTRYPOINT and `args` replaces CMD.
    assert "command" not in container, "the test runs the image's ENTRYPOINT"
    return env, container.get("args")


def on_this_machine(argv: list[str], env: dict[str, str]) -> list[str]:
    """The image's paths as found here: files the Dockerfile copies from the checkout,
    the rest (tini, gateway, python3) on the PATH given to the process."""
    copied = final_stage().copied()
    local = []
    for word in argv:
        if word in copied:
            local.append(str(TOP / copied[word]))
        elif word.startswith("/") or word in ("gateway", "python3"):
            found = shutil.which(Path(word).name, path=env["PATH"])
            if found is None:
                message = f"{Path(word).name} is needed to run the image's command here"
                message += " (Debian: apt-get install tini; .ci/run installs it)"
                if os.environ.get("CI") == "true":
                    pytest.fail(message)
                pytest.skip(message)
            local.append(found)
        else:
            local.append(word)
    return local


def get(url: str) -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


@pytest.fixture(params=["compose", "kubernetes"])
def container_env(request: pytest.FixtureRequest, tmp_path: Path) -> Launch:
    given, args = (from_compose if request.param == "compose" else from_kubernetes)(tmp_path)
    env = {
        **{k: v for k, v in final_stage().env().items() if k.startswith("GATEWAY_")},
        **{k: v for k, v in given.items() if not k.startswith(SHARED_BACKENDS)},
        "GATEWAY_HOST": "127.0.0.1",
        "GATEWAY_PORT": str(free_port()),
        "GATEWAY_DATABASE_URL": f"sqlite:///{tmp_path}/gateway.db",
        "GATEWAY_STORAGE_URL": str(tmp_path / "media"),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        # Reaps orphans as it does as PID 1 in the container.
        "TINI_SUBREAPER": "1",
    }
    if "GATEWAY_METRICS_ADDRESS" in env:
        env["GATEWAY_METRICS_ADDRESS"] = f"127.0.0.1:{free_port()}"
    if "PYTHONPATH" in os.environ:
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    image = final_stage()
    argv = image.exec_form("ENTRYPOINT") + (args or image.exec_form("CMD"))
    return env, argv


@pytest.fixture
def started(container_env: Launch) -> Iterator[Started]:
    env, argv = container_env
    process = subprocess.Popen(
        on_this_machine(argv, env),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # no terminal signals but ours, as in a container
    )
    output: list[str] = []
    assert process.stdout is not None
    for line in process.stdout:
        output.append(line)
        if "Running on" in line:
            break
    else:
        pytest.fail("the image's command stopped:\n" + "".join(output))
    drain = threading.Thread(target=output.extend, args=(process.stdout,), daemon=True)
    drain.start()
    # tini starts the server in a process group of its own: note it now, so that a
    # server left behind by a broken stop is still found and ended.
    family = [psutil.Process(process.pid), *psutil.Process(process.pid).children(True)]
    try:
        yield env, process, output
    finally:
        for member in family:
            with contextlib.suppress(psutil.NoSuchProcess):
                member.kill()
        process.wait(timeout=10)
        drain.join(timeout=10)
        if not drain.is_alive():
            process.stdout.close()


def healthcheck(env: dict[str, str]) -> int:
    """The image's HEALTHCHECK command, run as the engine runs it."""
    command = json.loads(final_stage().last("HEALTHCHECK").partition(" CMD ")[2])
    return subprocess.run(
        on_this_machine(command, env), env=env, capture_output=True, timeout=10, check=False
    ).returncode


@pytest.mark.timeout(120)
def test_image_command_starts_answers_probes_and_stops_on_sigterm(
    started: Started,
) -> None:
    env, process, output = started
    assert process.poll() is None, "".join(output)
    base = f"http://127.0.0.1:{env['GATEWAY_PORT']}"
    assert get(f"{base}/healthz") == (200, {"status": "ok"})
    assert get(f"{base}/readyz") == (
        200,
        {"status": "ready", "checks": {"database": "ok", "storage": "ok"}},
    )
    assert healthcheck(env) == 0
    # The key came from the environment or the secret file, not generated beside the db.
    assert not (
        Path(env["GATEWAY_DATABASE_URL"].removeprefix("sqlite:///")).parent / "signing-key"
    ).exists()

    grace = Settings.from_env(env).shutdown_grace
    stopping = time.monotonic()
    process.send_signal(signal.SIGTERM)  # to tini, PID 1 in the container
    assert process.wait(timeout=grace) == 0, "".join(output)
    assert time.monotonic() - stopping < grace
    assert healthcheck(env) != 0
