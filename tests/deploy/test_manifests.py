"""The manifests render, match the Kubernetes schemas, and hold what the issue asks of them."""

from __future__ import annotations

import base64

import pytest
from kubernetes_validate import SchemaNotFoundError, validate
from pydantic import ValidationError

from journeys_runtime.settings import CommonSettings
from tests.deploy.conftest import OVERLAYS, Doc, Rendered

PROJECT = "patient-journeys"
SERVICES = ("api", "executor", "scheduler", "projector", "delivery")
# The oldest Kubernetes minor still in support when this was written, and the newest known.
KUBERNETES_VERSIONS = ("1.32.0", "1.37.0")
# Kinds no schema ships for; tests/deploy/test_topics.py checks KafkaTopic field by field.
CUSTOM_KINDS = {"KafkaTopic"}


def ours(rendered: Rendered) -> list[Doc]:
    """The workloads running our image (not the local overlay's Kafka and PostgreSQL)."""
    part_of = "app.kubernetes.io/part-of"
    return [w for w in rendered.workloads() if w["metadata"]["labels"].get(part_of) == PROJECT]


def containers(workload: Doc) -> list[Doc]:
    pod = workload["spec"]["template"]["spec"]
    return [*pod.get("initContainers", []), *pod["containers"]]


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("name", OVERLAYS)
def test_validates_against_kubernetes_schemas(
    name: str, version: str, overlays: dict[str, Rendered]
) -> None:
    for doc in overlays[name].docs:
        if doc["kind"] in CUSTOM_KINDS:
            with pytest.raises(SchemaNotFoundError):
                validate(doc, version, strict=True)
            continue
        validate(doc, version, strict=True)  # strict: an unknown field is an error


@pytest.mark.parametrize("name", OVERLAYS)
def test_every_service_is_deployed_hardened(name: str, overlays: dict[str, Rendered]) -> None:
    rendered = overlays[name]
    for service in SERVICES:
        deployment = rendered.get("Deployment", f"journeys-{service}")
        pod = deployment["spec"]["template"]["spec"]
        assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
        main = pod["containers"][0]
        assert main["livenessProbe"]["httpGet"]["path"] == "/health"
        assert main["readinessProbe"]["httpGet"]["path"] == "/ready"
        assert {c["topologyKey"] for c in pod["topologySpreadConstraints"]} == {
            "kubernetes.io/hostname", "topology.kubernetes.io/zone"}  # fmt: skip
        assert [i["command"][-1] for i in pod["initContainers"]] == ["wait-for-setup"]
        pdbs = [p for p in rendered.of_kind("PodDisruptionBudget")
                if p["spec"]["selector"] == deployment["spec"]["selector"]]  # fmt: skip
        assert len(pdbs) == 1, f"{service}: one PodDisruptionBudget"
    for workload in ours(rendered):
        pod = workload["spec"]["template"]["spec"]
        assert pod["automountServiceAccountToken"] is False
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        for c in containers(workload):
            sc = c["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True, c["name"]
            assert sc["allowPrivilegeEscalation"] is False, c["name"]
            assert sc["capabilities"] == {"drop": ["ALL"]}, c["name"]
            for kind in ("requests", "limits"):
                assert set(c["resources"][kind]) == {"cpu", "memory"}, c["name"]


@pytest.mark.parametrize("name", OVERLAYS)
def test_only_the_api_takes_traffic(name: str, overlays: dict[str, Rendered]) -> None:
    rendered = overlays[name]
    policies = {p["metadata"]["name"]: p["spec"] for p in rendered.of_kind("NetworkPolicy")}
    assert policies["default-deny"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    open_to_all = [n for n, p in policies.items()
                   if any("from" not in rule for rule in p.get("ingress", []))]  # fmt: skip
    assert open_to_all == ["journeys-api-ingress"]
    api = policies["journeys-api-ingress"]["podSelector"]["matchLabels"]
    assert api == {"app.kubernetes.io/name": "journeys-api"}
    assert [s["metadata"]["name"] for s in rendered.of_kind("Service")
            if s["spec"].get("type") in ("LoadBalancer", "NodePort")] == []  # fmt: skip
    hpa = rendered.get("HorizontalPodAutoscaler", "journeys-api")
    assert hpa["spec"]["scaleTargetRef"]["name"] == "journeys-api"
    assert "replicas" not in rendered.get("Deployment", "journeys-api")["spec"]


@pytest.mark.parametrize("name", OVERLAYS)
def test_executor_replicas_never_exceed_partitions(
    name: str, overlays: dict[str, Rendered]
) -> None:
    rendered = overlays[name]
    replicas = rendered.get("Deployment", "journeys-executor")["spec"]["replicas"]
    assert 1 <= replicas <= int(rendered.config()["JOURNEYS_PARTITIONS"])


@pytest.mark.parametrize("name", OVERLAYS)
def test_the_executor_and_the_delivery_service_agree_on_the_default_channel(
    name: str, overlays: dict[str, Rendered]
) -> None:
    """The executor names each message's channel and checks consent against it; the delivery
    service's default serves only requests that name none. Two defaults would let a patient's
    consent be checked against one channel and the message go by another."""
    config = overlays[name].config()
    assert config["EXECUTOR_DEFAULT_CHANNEL"] == config["DELIVERY_DEFAULT_CHANNEL"]


def test_local_broker_reaches_itself_over_loopback(overlays: dict[str, Rendered]) -> None:
    """The default-deny policy covers the local Kafka pod too, and it gets no egress rule:
    its inter-broker traffic (transaction markers) must stay on 127.0.0.1."""
    kafka = overlays["local"].get("StatefulSet", "kafka")["spec"]["template"]["spec"]
    env = {e["name"]: e["value"] for e in kafka["containers"][0]["env"]}
    listener = env["KAFKA_INTER_BROKER_LISTENER_NAME"]
    advertised = dict(a.split("://") for a in env["KAFKA_ADVERTISED_LISTENERS"].split(","))
    assert advertised[listener].startswith(("127.0.0.1:", "localhost:"))


def test_local_patient_key_is_refused_in_production(overlays: dict[str, Rendered]) -> None:
    (secret,) = [s for s in overlays["local"].of_kind("Secret")
                 if s["metadata"]["name"].startswith("journeys-secrets")]  # fmt: skip
    key = base64.b64decode(secret["data"]["patient-key-secret"]).decode()
    CommonSettings(**{"JOURNEYS_ENV": "development", "JOURNEYS_PATIENT_KEY_SECRET": key})
    with pytest.raises(ValidationError, match="JOURNEYS_PATIENT_KEY_SECRET"):
        CommonSettings(**{"JOURNEYS_ENV": "production", "JOURNEYS_PATIENT_KEY_SECRET": key})


@pytest.mark.parametrize("name", OVERLAYS)
def test_no_credentials_in_production_manifests(name: str, overlays: dict[str, Rendered]) -> None:
    """Production refers to a Secret made apart; only the local overlay generates one."""
    secrets = overlays[name].of_kind("Secret")
    if name == "production":
        assert secrets == []
    else:
        assert {s["metadata"]["name"].rsplit("-", 1)[0] for s in secrets} == {
            "journeys-secrets", "postgres-credentials"}  # fmt: skip
