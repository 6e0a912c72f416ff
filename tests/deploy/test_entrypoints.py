"""The image, the manifests and compose start the services with the commands `make run` uses."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from journeys_stack.services import SERVICE_MODULES, Ports, service_processes
from tests.deploy.conftest import DEPLOY, Rendered

# `python -m journeys_<service>` plus the deploy-time subcommands each module takes.
SUBCOMMANDS = {
    "journeys_api": {(), ("migrate",), ("wait-for-setup",)},
    "journeys_api.ingest": {()},
    "journeys_api.imports": {()},
    "journeys_executor": {(), ("wait-for-setup",)},
    "journeys_scheduler": {(), ("migrate",), ("wait-for-setup",)},
    "journeys_projector": {(), ("migrate",), ("wait-for-setup",)},
    "journeys_delivery": {(), ("wait-for-setup",)},
    "journeys_runtime": {("topics", "apply"), ("topics", "verify")},
}


def make_run_command(service: str) -> list[str]:
    """What `make run` starts, with the interpreter as the image's PATH finds it."""
    return ["python", "-m", SERVICE_MODULES[service]]


def test_image_default_command_is_a_service() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    (cmd,) = re.findall(r"^CMD (\[.*\])$", text, flags=re.MULTILINE)
    assert json.loads(cmd) == make_run_command("api")
    assert not re.search(r"^ENTRYPOINT", text, flags=re.MULTILINE), "the command is all there is"


def test_kubernetes_runs_the_make_run_commands(overlays: dict[str, Rendered]) -> None:
    for rendered in overlays.values():
        for service in SERVICE_MODULES:
            pod = rendered.get("Deployment", f"journeys-{service}")["spec"]["template"]["spec"]
            assert [c["command"] for c in pod["containers"]] == [make_run_command(service)]
        for workload in rendered.workloads():
            pod = workload["spec"]["template"]["spec"]
            for c in [*pod.get("initContainers", []), *pod["containers"]]:
                if c["image"].startswith(("apache/kafka", "postgres")):
                    continue
                python, flag, module, *rest = c["command"]
                assert (python, flag) == ("python", "-m")
                assert tuple(rest) in SUBCOMMANDS[module], c["command"]


def test_compose_runs_the_make_run_commands() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())["services"]
    for service in SERVICE_MODULES:
        assert compose[service]["command"] == make_run_command(service)
    for name, spec in compose.items():
        if spec.get("image", "").startswith("patient-journeys"):
            python, flag, module, *rest = spec["command"]
            assert (python, flag) == ("python", "-m")
            assert tuple(rest) in SUBCOMMANDS[module], name


def test_make_run_starts_the_ingest_only_when_it_has_topics(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for sources, started in (None, False), ("[]", False), ('[{"topic": "clinic.events"}]', True):
        if sources is None:
            monkeypatch.delenv("INGEST_SOURCES", raising=False)
        else:
            monkeypatch.setenv("INGEST_SOURCES", sources)
        processes = service_processes({}, Ports(), tmp_path)
        names = [p.name for p in processes]
        assert names[: len(SERVICE_MODULES)] == list(SERVICE_MODULES)
        assert ("ingest" in names) is started
        if started:
            assert processes[-1].argv[1:] == ["-m", "journeys_api.ingest"]
