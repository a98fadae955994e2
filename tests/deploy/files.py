"""The deployment files under deploy/, read as the tools that use them read them."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import pytest
import yaml

from gateway.config import SETTINGS

TOP: Final = Path(__file__).parents[2]
DEPLOY: Final = TOP / "deploy"
DOCKERFILE: Final = DEPLOY / "Dockerfile"
COMPOSE: Final = DEPLOY / "compose.yaml"
KUBERNETES: Final = DEPLOY / "kubernetes"

# What `gateway` itself reads: the names in config.py's one table of settings.
KNOWN_SETTINGS: Final = frozenset(setting.name for setting in SETTINGS)
# The entrypoint's form for secrets mounted as files: GATEWAY_X_FILE fills GATEWAY_X.
FILE_SUFFIX: Final = "_FILE"


def unknown_settings(names: Iterable[str]) -> set[str]:
    """The GATEWAY_* names among `names` that gateway would silently ignore."""
    return {
        name
        for name in names
        if name.startswith("GATEWAY_")
        and name not in KNOWN_SETTINGS
        and name.removesuffix(FILE_SUFFIX) not in KNOWN_SETTINGS
    }


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [value for word, value in self.instructions if word == keyword]

    def last(self, keyword: str) -> str:
        found = self.all(keyword)
        assert found, f"no {keyword} in the stage FROM {self.base}"
        return found[-1]

    def env(self) -> dict[str, str]:
        values: dict[str, str] = {}
        for line in self.all("ENV"):
            for pair in shlex.split(line):
                name, _, value = pair.partition("=")
                values[name] = value
        return values

    def exec_form(self, keyword: str) -> list[str]:
        """ENTRYPOINT, CMD: the JSON form only, the one that runs without a shell."""
        value = json.loads(self.last(keyword))
        assert isinstance(value, list), f"{keyword} is not in exec form"
        return [str(part) for part in value]

    def copied(self) -> dict[str, str]:
        """Destination in the image -> source in the build context (not other stages)."""
        copies = {}
        for line in self.all("COPY"):
            *sources, destination = line.split()
            if not any(source.startswith("--from") for source in sources):
                copies[destination] = sources[-1]
        return copies


def dockerfile_stages(path: Path = DOCKERFILE) -> tuple[dict[str, str], list[Stage]]:
    """Global ARG defaults and the stages, each with its instructions in order."""
    args: dict[str, str] = {}
    stages: list[Stage] = []
    logical = path.read_text().replace("\\\n", " ")
    for line in logical.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, value = line.partition(" ")
        keyword, value = keyword.upper(), " ".join(value.split())
        if keyword == "FROM":
            words = value.split()
            base = words[0]
            for name, default in args.items():
                base = base.replace(f"${{{name}}}", default).replace(f"${name}", default)
            stages.append(Stage(base, words[2] if len(words) > 2 else None))
        elif keyword == "ARG" and not stages:
            name, _, default = value.partition("=")
            args[name] = default
        else:
            stages[-1].instructions.append((keyword, value))
    return args, stages


def final_stage() -> Stage:
    return dockerfile_stages()[1][-1]


def compose() -> dict[str, Any]:
    document = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(document, dict)
    return document


def environment(service: dict[str, Any]) -> dict[str, str]:
    """A compose service's environment, in either of compose's two spellings."""
    given = service.get("environment") or {}
    if isinstance(given, list):
        given = dict(item.partition("=")[::2] for item in given)
    return {str(name): str(value) for name, value in given.items()}


def kubectl() -> str:
    found = shutil.which("kubectl")
    if found is None:
        message = (
            "kubectl is needed to render deploy/kubernetes with kustomize: "
            "apt-get install kubernetes-client (Debian), or any kubectl 1.14 or later"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return found


def kustomize(folder: Path) -> list[dict[str, Any]]:
    """`kubectl kustomize` of a folder: the manifests `kubectl apply -k` would send."""
    rendered = subprocess.run(
        [kubectl(), "kustomize", str(folder)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert rendered.returncode == 0, rendered.stderr
    return [document for document in yaml.safe_load_all(rendered.stdout) if document]


def one(manifests: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [manifest for manifest in manifests if manifest["kind"] == kind]
    assert len(found) == 1, f"{len(found)} {kind}s"
    return found[0]
