"""Dependencies point one way: the import graph of `gateway/`, read with `ast`."""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest

import gateway

PACKAGE = Path(gateway.__file__).resolve().parent
ROOT = PACKAGE.parent


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


@cache
def imports_of(module: str) -> frozenset[str]:
    """Every module `module` imports, anywhere in its body, as absolute dotted names.

    `from a import b` counts as importing both `a` and `a.b`, since `b` may be a module.
    """
    path = MODULES[module]
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                package = module if is_package else module.rpartition(".")[0]
                for _ in range(node.level - 1):
                    package = package.rpartition(".")[0]
                base = f"{package}.{node.module}" if node.module else package
            else:
                base = node.module or ""
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return frozenset(found)


def is_within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def importers_of(package: str) -> set[str]:
    return {
        module for module in MODULES if any(is_within(name, package) for name in imports_of(module))
    }


def in_gateway_closure(module: str) -> set[str]:
    """`module` and every gateway module it reaches through imports."""
    seen: set[str] = set()
    todo = [module]
    while todo:
        current = todo.pop()
        if current in seen or current not in MODULES:
            continue
        seen.add(current)
        todo.extend(name for name in imports_of(current) if is_within(name, "gateway"))
    return seen


def test_the_import_walk_sees_what_it_must() -> None:
    # Guards the guards below: a walker that found nothing would pass them all.
    assert {"gateway.app", "gateway.media.send", "gateway.api.routes"} <= set(MODULES)
    assert "gateway.app" in importers_of("aiohttp")
    assert "gateway.api.query" in importers_of("gateway.errors")
    assert "gateway.store.postgres" in importers_of("asyncpg")


def may_import_aiohttp(module: str) -> bool:
    return is_within(module, "gateway.api") or module in {
        "gateway.app",
        "gateway.cli",
        "gateway.media.send",
        "gateway.callbacks.delivery",  # the gateway as a client of callback receivers
        "gateway.twilio_import.source",  # ... and of the service an import reads from
    }


@pytest.mark.parametrize(
    ("library", "allowed"),
    [
        ("aiobotocore", {"gateway.storage.s3"}),
        ("asyncpg", {"gateway.store.postgres"}),
        ("twilio", {"gateway.twilio_import.source"}),
    ],
)
def test_backend_library_is_imported_only_by_its_adapter(library: str, allowed: set[str]) -> None:
    assert importers_of(library) <= allowed


def test_aiohttp_is_imported_only_by_the_http_layer() -> None:
    outside = {module for module in importers_of("aiohttp") if not may_import_aiohttp(module)}
    assert outside == set()


CORE = [
    "gateway.recordings",
    "gateway.ingestion",
    "gateway.janitor",
    "gateway.callbacks.events",
    "gateway.models",
    "gateway.signing",
    "gateway.errors",
]


@pytest.mark.parametrize("module", CORE)
def test_core_module_imports_nothing_from_the_api(module: str) -> None:
    assert not any(is_within(name, "gateway.api") for name in imports_of(module))


@pytest.mark.parametrize("module", CORE)
def test_core_module_reaches_neither_the_api_nor_aiohttp_indirectly(module: str) -> None:
    reached = in_gateway_closure(module)
    assert {name for name in reached if is_within(name, "gateway.api")} == set()
    assert {name for name in reached if name in importers_of("aiohttp")} == set()


# What stands behind the MetadataStore and MediaStorage Protocols.
ADAPTERS = [
    "gateway.store.sql",
    "gateway.store.schema",
    "gateway.store.sqlite",
    "gateway.store.postgres",
    "gateway.storage.local",
    "gateway.storage.s3",
]


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_the_http_layer_reaches_no_backend_adapter(adapter: str) -> None:
    # Through the Protocols only: an adapter chosen by URL in one place, never imported.
    assert adapter in MODULES
    reached = {m for m in MODULES if is_within(m, "gateway.api") and adapter in imports_of(m)}
    assert reached == set()
