"""deploy/compose.yaml: nginx over two gateways on shared PostgreSQL and S3."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

from gateway.config import Settings
from tests.deploy.files import COMPOSE, compose, environment, final_stage, unknown_settings

GO_DURATION: Final = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
GO_UNITS: Final = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}


def seconds(duration: str) -> float:
    """A compose duration such as 1m30s (Go's syntax)."""
    assert GO_DURATION.sub("", duration) == "", duration
    return sum(float(n) * GO_UNITS[unit] for n, unit in GO_DURATION.findall(duration))


def services() -> dict[str, dict[str, Any]]:
    found = compose()["services"]
    assert isinstance(found, dict)
    return found


def from_gateway_image(service: dict[str, Any]) -> bool:
    build = service.get("build") or {}
    return isinstance(build, dict) and build.get("dockerfile") == "deploy/Dockerfile"


def command(service: dict[str, Any]) -> list[str]:
    """What the container runs after the entrypoint: its command, or the image's CMD."""
    return list(service.get("command") or final_stage().exec_form("CMD"))


def gateways() -> dict[str, dict[str, Any]]:
    serving = {
        name: service
        for name, service in services().items()
        if from_gateway_image(service) and command(service)[1:2] == ["serve"]
    }
    assert len(serving) >= 2, "a multi-instance service needs two gateways at least"
    return serving


def settings(service: dict[str, Any]) -> dict[str, str]:
    """The GATEWAY_* values the process sees: the image's, then the service's."""
    return {**final_stage().env(), **environment(service)}


def test_compose_sets_only_settings_gateway_knows() -> None:
    for name, service in services().items():
        assert unknown_settings(environment(service)) == set(), name


def test_gateway_settings_are_valid_values() -> None:
    for service in gateways().values():
        env = {k: v for k, v in settings(service).items() if not k.endswith("_FILE")}
        Settings.from_env(env)  # raises ConfigError naming the bad one


def test_every_gateway_waits_for_the_migration_to_succeed() -> None:
    migrations = [
        name
        for name, service in services().items()
        if from_gateway_image(service) and command(service) == ["gateway", "migrate"]
    ]
    assert len(migrations) == 1
    for name, service in gateways().items():
        condition = service["depends_on"][migrations[0]]["condition"]
        assert condition == "service_completed_successfully", name


def test_migration_runs_once_the_database_answers() -> None:
    migrate = next(s for s in services().values() if command(s) == ["gateway", "migrate"])
    assert migrate.get("restart", "no") == "no"
    database = urlsplit(settings(migrate)["GATEWAY_DATABASE_URL"]).hostname
    assert migrate["depends_on"][database]["condition"] == "service_healthy"


def test_gateways_share_postgresql_and_s3_served_by_compose() -> None:
    for name, service in gateways().items():
        env = settings(service)
        database = urlsplit(env["GATEWAY_DATABASE_URL"])
        assert database.scheme in ("postgresql", "postgres"), name
        assert services()[str(database.hostname)]["image"].startswith("postgres:")
        assert urlsplit(env["GATEWAY_STORAGE_URL"]).scheme == "s3", name
        assert urlsplit(env["GATEWAY_S3_ENDPOINT_URL"]).hostname in services(), name
    assert len({settings(s)["GATEWAY_DATABASE_URL"] for s in gateways().values()}) == 1
    assert len({settings(s)["GATEWAY_STORAGE_URL"] for s in gateways().values()}) == 1


def test_every_gateway_reads_its_signing_keys_from_the_compose_secret() -> None:
    secrets = compose()["secrets"]
    for name, service in gateways().items():
        env = environment(service)
        assert "GATEWAY_SIGNING_KEYS" not in env, name
        path = Path(env["GATEWAY_SIGNING_KEYS_FILE"])
        assert path.parent == Path("/run/secrets"), name  # where compose mounts them
        assert path.name in service["secrets"], name
        source = COMPOSE.parent / secrets[path.name]["file"]
        # The entrypoint drops the file's trailing newline; the value must then be valid.
        keys = Settings.from_env({"GATEWAY_SIGNING_KEYS": source.read_text().rstrip("\n")})
        assert keys.signing_keys
    assert "gateway-entrypoint" in " ".join(final_stage().exec_form("ENTRYPOINT"))


def test_gateways_stop_no_sooner_than_their_shutdown_grace_allows() -> None:
    for name, service in gateways().items():
        grace = Settings.from_env(
            {"GATEWAY_SHUTDOWN_GRACE": settings(service).get("GATEWAY_SHUTDOWN_GRACE", "60s")}
        ).shutdown_grace
        # Compose's default is 10 s, then SIGKILL.
        assert seconds(service.get("stop_grace_period", "10s")) > grace, name


def test_gateways_serve_metrics_on_the_metrics_port() -> None:
    for name, service in gateways().items():
        address = settings(service)["GATEWAY_METRICS_ADDRESS"]
        assert address.rpartition(":")[2] == "9464", name
        assert "9464" in [str(port) for port in service.get("expose", [])], name


def nginx_upstreams() -> set[str]:
    nginx = next(s for s in services().values() if s["image"].startswith("nginx:"))
    (mount,) = [v for v in nginx["volumes"] if ":/etc/nginx/conf.d/" in v]
    config = (COMPOSE.parent / mount.partition(":")[0]).read_text()
    (upstream,) = re.findall(r"upstream\s+\w+\s*\{(.*?)\}", config, re.DOTALL)
    return set(re.findall(r"^\s*server\s+(\S+?)[\s;]", upstream, re.MULTILINE))


def test_nginx_balances_over_every_gateway() -> None:
    addresses = {
        f"{name}:{settings(service).get('GATEWAY_PORT', '8080')}"
        for name, service in gateways().items()
    }
    assert nginx_upstreams() == addresses


def test_nginx_starts_once_every_gateway_is_healthy() -> None:
    nginx = next(s for s in services().values() if s["image"].startswith("nginx:"))
    assert {name: d["condition"] for name, d in nginx["depends_on"].items()} == {
        name: "service_healthy" for name in gateways()
    }


def test_gateways_trust_forwarded_headers_only_from_the_compose_network() -> None:
    (subnet,) = [entry["subnet"] for entry in compose()["networks"]["default"]["ipam"]["config"]]
    network = ipaddress.ip_network(subnet)
    for name, service in gateways().items():
        env = {k: v for k, v in settings(service).items() if not k.endswith("_FILE")}
        assert Settings.from_env(env).trusted_proxies == (network,), name
        # Services on that network only: nginx, not every address of the host.
        assert "networks" not in service or service["networks"] == ["default"], name
