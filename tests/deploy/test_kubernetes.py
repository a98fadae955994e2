"""deploy/kubernetes: the kustomize base rendered as `kubectl apply -k` sends it, checked
against the Kubernetes schemas and against what running the gateway there needs."""

from __future__ import annotations

from typing import Any, Final

import kubernetes_validate
import pytest
import yaml

from gateway.api.health import CHECK_TIMEOUT
from gateway.config import Settings
from tests.deploy.files import KUBERNETES, final_stage, kustomize, one, unknown_settings

# The oldest and the newest schemas the validator ships.
VERSIONS: Final = sorted(
    {kubernetes_validate.utils.all_versions()[0], kubernetes_validate.latest_version()}
)


@pytest.fixture(scope="module")
def base() -> list[dict[str, Any]]:
    return kustomize(KUBERNETES / "base")


@pytest.fixture(scope="module")
def monitoring() -> list[dict[str, Any]]:
    return kustomize(KUBERNETES / "monitoring")


def secret_example() -> dict[str, Any]:
    document = yaml.safe_load((KUBERNETES / "secret.example.yaml").read_text())
    assert isinstance(document, dict)
    return document


def pod(base: list[dict[str, Any]]) -> dict[str, Any]:
    spec = one(base, "Deployment")["spec"]["template"]["spec"]
    assert isinstance(spec, dict)
    return spec


def container(base: list[dict[str, Any]]) -> dict[str, Any]:
    (found,) = pod(base)["containers"]
    assert isinstance(found, dict)
    return found


def config(base: list[dict[str, Any]]) -> dict[str, str]:
    data = one(base, "ConfigMap")["data"]
    assert isinstance(data, dict)
    return data


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    wanted = selector.get("matchLabels", selector)
    return bool(wanted) and all(labels.get(k) == v for k, v in wanted.items())


@pytest.mark.parametrize("version", VERSIONS)
def test_base_and_secret_example_are_valid_kubernetes_manifests(
    base: list[dict[str, Any]], version: str
) -> None:
    for manifest in [*base, secret_example()]:
        # strict: a misspelt or misplaced field is an error, not silently dropped.
        kubernetes_validate.validate(manifest, version, strict=True)


def test_base_is_the_workload_the_issue_asks_for(base: list[dict[str, Any]]) -> None:
    kinds = sorted(manifest["kind"] for manifest in base)
    assert kinds == [
        "ConfigMap",
        "Deployment",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "Service",
    ]
    assert one(base, "HorizontalPodAutoscaler")["apiVersion"] == "autoscaling/v2"


def test_base_needs_no_prometheus_operator(base: list[dict[str, Any]]) -> None:
    assert not [m for m in base if m["apiVersion"].startswith("monitoring.coreos.com/")]


def test_readiness_asks_readyz_and_liveness_healthz(base: list[dict[str, Any]]) -> None:
    gateway = container(base)
    ports = {port["name"]: port["containerPort"] for port in gateway["ports"]}
    assert gateway["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert gateway["livenessProbe"]["httpGet"]["path"] == "/healthz"
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        port = gateway[probe]["httpGet"]["port"]
        assert ports.get(port, port) == int(config(base)["GATEWAY_PORT"]), probe


def test_readiness_waits_for_the_gateway_own_verdict(base: list[dict[str, Any]]) -> None:
    # The gateway gives each backend CHECK_TIMEOUT before answering 503; a probe timing
    # out first (Kubernetes' default is 1 s) would report a slow check as a failure.
    assert container(base)["readinessProbe"]["timeoutSeconds"] > CHECK_TIMEOUT


def test_termination_grace_covers_prestop_and_the_shutdown_grace(
    base: list[dict[str, Any]],
) -> None:
    # Kubernetes counts preStop within terminationGracePeriodSeconds, then SIGKILLs.
    grace = Settings.from_env(config(base)).shutdown_grace
    pre_stop = container(base).get("lifecycle", {}).get("preStop", {})
    command = pre_stop.get("exec", {}).get("command", [])
    waited = float(command[1]) if command[:1] == ["sleep"] else 0.0
    assert pod(base)["terminationGracePeriodSeconds"] > waited + grace


def effective(base: list[dict[str, Any]], field: str) -> Any:
    """A securityContext field as the kubelet applies it: the container's, else the pod's."""
    return (
        container(base)
        .get("securityContext", {})
        .get(field, pod(base).get("securityContext", {}).get(field))
    )


def test_pods_run_under_the_restricted_security_profile(base: list[dict[str, Any]]) -> None:
    assert effective(base, "runAsNonRoot") is True
    assert effective(base, "readOnlyRootFilesystem") is True
    assert effective(base, "allowPrivilegeEscalation") is False
    assert effective(base, "capabilities") == {"drop": ["ALL"]}
    assert effective(base, "seccompProfile") == {"type": "RuntimeDefault"}
    user = effective(base, "runAsUser")
    assert user is None or user == int(final_stage().last("USER").partition(":")[0])


def test_tmp_is_writable_on_the_read_only_root(base: list[dict[str, Any]]) -> None:
    volumes = {volume["name"]: volume for volume in pod(base)["volumes"]}
    (tmp,) = [m for m in container(base)["volumeMounts"] if m["mountPath"] == "/tmp"]
    assert "emptyDir" in volumes[tmp["name"]]
    assert not tmp.get("readOnly", False)


def test_settings_come_from_the_config_map_and_secrets_from_the_secret(
    base: list[dict[str, Any]],
) -> None:
    sources = container(base)["envFrom"]
    assert {"configMapRef": {"name": one(base, "ConfigMap")["metadata"]["name"]}} in sources
    assert {"secretRef": {"name": secret_example()["metadata"]["name"]}} in sources
    assert "env" not in container(base)


def test_config_map_holds_only_known_settings_with_valid_values(
    base: list[dict[str, Any]],
) -> None:
    assert unknown_settings(config(base)) == set()
    assert all(name.startswith("GATEWAY_") for name in config(base))
    Settings.from_env(config(base))  # raises ConfigError naming the bad one


def test_config_map_holds_no_secret(base: list[dict[str, Any]]) -> None:
    secret = set(secret_example()["stringData"])
    assert secret & set(config(base)) == set()
    assert {"GATEWAY_SIGNING_KEYS", "GATEWAY_DATABASE_URL"} <= secret


def test_secret_example_names_known_settings_and_holds_placeholders_only() -> None:
    data = secret_example()["stringData"]
    assert unknown_settings(data) == set()
    assert all(name.startswith(("GATEWAY_", "AWS_")) for name in data)
    assert "data" not in secret_example()
    # Applied unedited, the pods must refuse to start rather than run on a public key.
    with pytest.raises(Exception, match="GATEWAY_SIGNING_KEYS"):
        Settings.from_env({"GATEWAY_SIGNING_KEYS": data["GATEWAY_SIGNING_KEYS"]})


def test_service_sends_to_the_gateway_pods_and_names_the_metrics_port(
    base: list[dict[str, Any]],
) -> None:
    service = one(base, "Service")
    labels = one(base, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert selects(service["spec"]["selector"], labels)
    container_ports = {port["name"]: port["containerPort"] for port in container(base)["ports"]}
    assert {port["name"]: port["targetPort"] for port in service["spec"]["ports"]} == {
        "http": "http",
        "metrics": "metrics",
    }
    assert container_ports["http"] == int(config(base)["GATEWAY_PORT"])
    metrics = config(base)["GATEWAY_METRICS_ADDRESS"]
    assert container_ports["metrics"] == int(metrics.rpartition(":")[2]) == 9464


def test_disruption_budget_lets_a_drain_evict_one_pod_and_keeps_one(
    base: list[dict[str, Any]],
) -> None:
    budget = one(base, "PodDisruptionBudget")["spec"]
    labels = one(base, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert selects(budget["selector"], labels)
    fewest = one(base, "HorizontalPodAutoscaler")["spec"]["minReplicas"]
    if "maxUnavailable" in budget:
        allowed = budget["maxUnavailable"]
    else:
        allowed = fewest - budget["minAvailable"]
    assert isinstance(allowed, int)  # a percentage would round with the count
    assert 1 <= allowed < fewest


def test_autoscaler_owns_the_replica_count_of_the_deployment(
    base: list[dict[str, Any]],
) -> None:
    autoscaler = one(base, "HorizontalPodAutoscaler")["spec"]
    deployment = one(base, "Deployment")
    assert autoscaler["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": deployment["metadata"]["name"],
    }
    assert autoscaler["minReplicas"] >= 2
    # A replicas field would reset the autoscaler's choice at every apply.
    assert "replicas" not in deployment["spec"]
    # CPU utilisation is measured against the request: without one the HPA cannot act.
    assert any(m["resource"]["name"] == "cpu" for m in autoscaler["metrics"])
    assert "cpu" in container(base)["resources"]["requests"]


def test_rolling_update_keeps_every_ready_pod_until_its_successor_is_ready(
    base: list[dict[str, Any]],
) -> None:
    strategy = one(base, "Deployment")["spec"]["strategy"]
    assert strategy["rollingUpdate"]["maxUnavailable"] == 0


def test_service_monitor_scrapes_the_metrics_port_of_the_base_service(
    base: list[dict[str, Any]], monitoring: list[dict[str, Any]]
) -> None:
    monitor = one(monitoring, "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    service = one(base, "Service")
    assert selects(monitor["spec"]["selector"], service["metadata"]["labels"])
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in {port["name"] for port in service["spec"]["ports"]}
    assert endpoint["port"] == "metrics"
    assert endpoint["path"] == "/metrics"
