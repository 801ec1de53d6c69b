"""The compose file and Kubernetes manifests name the images, commands, ports, settings and
probe paths the services actually use."""

from __future__ import annotations

import re
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic_settings import BaseSettings

from analytics.settings import AnalyticsSettings
from consumers.settings import WorkerSettings
from deploy.cli import parser
from disparo.ops_http import HEALTH_PATH, METRICS_PATH, READY_PATH
from disparo.settings import KernelSettings
from disparo.topics import ORDER_EVENT_PARTITIONS
from dispatcher.settings import DispatcherSettings

DEPLOY = Path(__file__).parents[2] / "deploy"
CA_FILE = "/etc/disparo/kafka-ca/ca.pem"
IMAGE = f"disparo:{version('disparo')}"
# service command -> (its settings class, the setting holding its HTTP port)
SERVICES: dict[str, tuple[type[BaseSettings], str | None]] = {
    "dispatcher": (DispatcherSettings, "dispatcher_port"),
    "worker": (WorkerSettings, "worker_port"),
    "analytics": (AnalyticsSettings, "api_port"),
    "topics": (KernelSettings, None),
    "acls": (KernelSettings, None),
}
RUNTIME = ("dispatcher", "worker", "analytics")  # long-running: each its own Kafka principal


def env_names(cls: type[BaseSettings]) -> set[str]:
    return {f"DISPARO_{name.upper()}" for name in cls.model_fields}


def settings_of(command: str, env: dict[str, str]) -> Any:
    """The settings a service would run with: unknown variables and bad values fail here."""
    cls, _ = SERVICES[command]
    unknown = set(env) - env_names(cls)
    assert not unknown, f"{command} does not read {sorted(unknown)}"
    values = {name.removeprefix("DISPARO_").lower(): value for name, value in env.items()}
    if "kafka_ca_file" in values:  # a mounted volume's file: any readable file stands in
        assert values["kafka_ca_file"] == CA_FILE
        values["kafka_ca_file"] = __file__
    return cls(**values)


def port_of(command: str, settings: Any) -> int | None:
    field = SERVICES[command][1]
    return None if field is None else int(getattr(settings, field))


def load_all(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


# ---- compose ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((DEPLOY / "compose" / "compose.yaml").read_text())
    return loaded


def disparo_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Services running a disparo command (not the shell of the certificates job)."""
    return {
        n: s
        for n, s in compose["services"].items()
        if s.get("image") == IMAGE and "entrypoint" not in s
    }


def test_compose_runs_each_service_of_the_image_once(compose: dict[str, Any]) -> None:
    commands = [s["command"][0] for s in disparo_services(compose).values()]
    assert sorted(commands) == sorted(SERVICES)
    known = set(parser()._subparsers._group_actions[0].choices)  # type: ignore[union-attr]
    assert set(commands) <= known
    assert all(s.get("image") for s in compose["services"].values())


def test_compose_settings_ports_and_healthchecks_match_the_services(
    compose: dict[str, Any],
) -> None:
    for name, service in disparo_services(compose).items():
        command = service["command"][0]
        settings = settings_of(command, {k: str(v) for k, v in service["environment"].items()})
        port = port_of(command, settings)
        if port is None:
            continue
        exposed = {int(str(p).split(":")[-1]) for p in service.get("expose", [])}
        exposed |= {int(str(p).split(":")[-1]) for p in service.get("ports", [])}
        assert exposed == {port}, name
        check = " ".join(service["healthcheck"]["test"])
        assert f"http://127.0.0.1:{port}{READY_PATH}" in check, name
        host = settings.api_host if command == "analytics" else settings.ops_host
        assert host == "0.0.0.0", f"{name} must listen beyond the container's loopback"


def test_compose_kafka_is_three_brokers_and_topics_are_replicated_to_them(
    compose: dict[str, Any],
) -> None:
    brokers = sorted(n for n in compose["services"] if re.fullmatch(r"kafka-\d", n))
    assert len(brokers) == 3
    for name, service in disparo_services(compose).items():
        env = service["environment"]
        port = 9092 if name in RUNTIME else 9094  # setup jobs: the internal listener
        assert env["DISPARO_KAFKA_BOOTSTRAP"] == ",".join(f"{b}:{port}" for b in brokers)
        assert int(env["DISPARO_TOPIC_REPLICATION"]) == 3
        if name in RUNTIME:  # SASL_SSL, as the service's own principal (docs/operations.md)
            assert env["DISPARO_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
            assert env["DISPARO_KAFKA_SASL_USERNAME"] == name
            assert env["DISPARO_KAFKA_SASL_PASSWORD"].startswith(
                f"${{DISPARO_KAFKA_PASSWORD_{name.upper()}:?"
            )
    kafka = compose["services"][brokers[0]]["environment"]
    assert kafka["KAFKA_AUTHORIZER_CLASS_NAME"].endswith("StandardAuthorizer")
    assert kafka["KAFKA_LISTENERS"].startswith("SASL_SSL://:9092,")
    voters = compose["services"][brokers[0]]["environment"]["KAFKA_CONTROLLER_QUORUM_VOTERS"]
    assert voters == ",".join(f"{n + 1}@{b}:9093" for n, b in enumerate(brokers))
    analytics = compose["services"]["analytics"]["environment"]
    assert analytics["DISPARO_CLICKHOUSE_URL"].startswith("clickhouse://clickhouse:9000/")


def test_prometheus_scrapes_every_service_on_its_port(compose: dict[str, Any]) -> None:
    config = yaml.safe_load((DEPLOY / "compose" / "prometheus.yml").read_text())
    scraped = {
        sd["names"][0]: sd["port"]
        for job in config["scrape_configs"]
        for sd in job["dns_sd_configs"]
    }
    expected = {}
    for name, service in disparo_services(compose).items():
        command = service["command"][0]
        port = port_of(command, settings_of(command, service["environment"]))
        if port is not None:
            expected[name] = port
    assert scraped == expected
    assert all(
        job.get("metrics_path", METRICS_PATH) == METRICS_PATH for job in config["scrape_configs"]
    )
    assert config["rule_files"] == ["/etc/prometheus/rules.yml"]


# ---- kubernetes -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def k8s() -> list[dict[str, Any]]:
    return [doc for path in sorted((DEPLOY / "k8s").glob("*.yaml")) for doc in load_all(path)]


def of_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def test_configmap_holds_only_shared_settings(k8s: list[dict[str, Any]]) -> None:
    [configmap] = of_kind(k8s, "ConfigMap")
    credentials = {"DISPARO_KAFKA_SASL_USERNAME": "u", "DISPARO_KAFKA_SASL_PASSWORD": "p"}
    settings = settings_of("topics", {**configmap["data"], **credentials})  # all kernel's
    assert settings.kafka_security_protocol == "SASL_SSL"
    assert configmap["data"]["DISPARO_OPS_HOST"] == "0.0.0.0"


def test_deployments_match_image_commands_env_ports_and_probes(k8s: list[dict[str, Any]]) -> None:
    [configmap] = of_kind(k8s, "ConfigMap")
    deployments = of_kind(k8s, "Deployment")
    assert sorted(
        d["spec"]["template"]["spec"]["containers"][0]["args"][0] for d in deployments
    ) == [
        "analytics",
        "dispatcher",
        "worker",
    ]
    for deployment in deployments:
        pod = deployment["spec"]["template"]
        [container] = pod["spec"]["containers"]
        command = container["args"][0]
        assert container["image"] == IMAGE
        assert container["envFrom"] == [{"configMapRef": {"name": configmap["metadata"]["name"]}}]
        env = dict(configmap["data"])
        env.update({e["name"]: e["value"] for e in container.get("env", []) if "value" in e})
        from_secrets = {e["name"] for e in container.get("env", []) if "valueFrom" in e}
        assert from_secrets <= env_names(SERVICES[command][0])
        kafka_login = {n for n in from_secrets if n.startswith("DISPARO_KAFKA_SASL_")}
        env.update(dict.fromkeys(kafka_login, "from-a-secret"))
        assert env["DISPARO_KAFKA_SASL_USERNAME"] == command  # its own Kafka principal
        mounts = {m["mountPath"] for m in container.get("volumeMounts", [])}
        assert str(Path(CA_FILE).parent) in mounts
        port = port_of(command, settings_of(command, env))
        assert [p["containerPort"] for p in container["ports"]] == [port]
        assert container["livenessProbe"]["httpGet"] == {"path": HEALTH_PATH, "port": port}
        assert container["readinessProbe"]["httpGet"] == {"path": READY_PATH, "port": port}
        annotations = pod["metadata"]["annotations"]
        assert annotations["prometheus.io/port"] == str(port)
        assert annotations["prometheus.io/path"] == METRICS_PATH
        labels = deployment["spec"]["selector"]["matchLabels"]
        assert labels.items() <= pod["metadata"]["labels"].items()


def test_services_pdbs_and_autoscaler_point_at_real_deployments(k8s: list[dict[str, Any]]) -> None:
    deployments = {d["metadata"]["name"]: d for d in of_kind(k8s, "Deployment")}
    pod_labels = {n: d["spec"]["template"]["metadata"]["labels"] for n, d in deployments.items()}
    ports = {
        n: {p["containerPort"] for p in d["spec"]["template"]["spec"]["containers"][0]["ports"]}
        for n, d in deployments.items()
    }
    for service in of_kind(k8s, "Service"):
        [target] = [
            n
            for n, labels in pod_labels.items()
            if service["spec"]["selector"].items() <= labels.items()
        ]
        assert {p["targetPort"] for p in service["spec"]["ports"]} <= ports[target]
    pdbs = of_kind(k8s, "PodDisruptionBudget")
    assert {p["metadata"]["name"] for p in pdbs} == set(deployments)
    for pdb in pdbs:
        labels = pdb["spec"]["selector"]["matchLabels"]
        assert labels.items() <= pod_labels[pdb["metadata"]["name"]].items()
    [hpa] = of_kind(k8s, "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["name"] in deployments
    # More workers than partitions would sit idle.
    assert hpa["spec"]["maxReplicas"] <= ORDER_EVENT_PARTITIONS
    assert hpa["spec"]["minReplicas"] >= 1


def test_the_image_sets_only_known_settings() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    names = set(re.findall(r"(DISPARO_[A-Z_]+)=", dockerfile))
    assert names == {"DISPARO_HOME", "DISPARO_OPS_HOST", "DISPARO_API_HOST"}
    assert names <= env_names(AnalyticsSettings)
    assert 'ENTRYPOINT ["disparo"]' in dockerfile
