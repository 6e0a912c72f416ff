"""hadolint and checkov on the Dockerfile, checkov on every rendered overlay, yamllint on all.

A finding fails the test; a check skipped on purpose carries its reason next to it (checkov
annotations in the manifests, `# checkov:skip=` / `# hadolint ignore=` in the Dockerfile).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.conftest import DEPLOY, OVERLAYS, ROOT, Rendered, tool

CHECKOV_PROJECT = DEPLOY / "checks"  # checkov's own locked environment (see its pyproject)


def run(argv: list[str], timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, capture_output=True, text=True, check=False, timeout=timeout, cwd=ROOT
    )


def checkov(targets: list[Path], frameworks: list[str]) -> list[dict[str, Any]]:
    """One checkov run over every target (its start-up is most of its time): a report per
    framework."""
    uv = shutil.which("uv")
    assert uv, "uv is needed to run checkov from deploy/checks"
    files = [arg for target in targets for arg in ("--file", str(target))]
    done = run([uv, "run", "--project", str(CHECKOV_PROJECT), "--frozen", "--quiet",
                "checkov", *files, "--framework", *frameworks,
                "--output", "json", "--skip-download"])  # fmt: skip
    assert done.returncode in (0, 1), done.stderr[-3000:]
    reports = json.loads(done.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    for report in reports:
        assert report["summary"]["parsing_errors"] == 0
    return reports


@pytest.fixture(scope="module")
def checked(overlays: dict[str, Rendered], tmp_path_factory: pytest.TempPathFactory) -> Any:
    """checkov's results for the Dockerfile and each rendered overlay, by target."""
    out = tmp_path_factory.mktemp("checkov")
    targets = {"Dockerfile": DEPLOY / "Dockerfile"}
    for name in OVERLAYS:
        targets[name] = out / f"{name}.yaml"
        targets[name].write_text(overlays[name].text)
    reports = checkov(list(targets.values()), ["dockerfile", "kubernetes"])
    by_target: dict[str, dict[str, list[Any]]] = {}
    for name, path in targets.items():
        mine = {kind: [c for r in reports for c in r.get("results", {}).get(kind, [])
                       if Path(c["file_path"]).name == path.name]
                for kind in ("passed_checks", "failed_checks", "skipped_checks")}  # fmt: skip
        assert mine["passed_checks"] or mine["failed_checks"], f"checkov checked nothing in {name}"
        by_target[name] = mine
    return by_target


def failed(results: dict[str, Any]) -> list[str]:
    return [f"{c['check_id']} {c['resource']}: {c['check_name']}" for c in results["failed_checks"]]


def test_yamllint() -> None:
    done = run([tool("yamllint"), "--strict", "-c", str(DEPLOY / ".yamllint.yaml"), str(DEPLOY)])
    assert done.returncode == 0, done.stdout


def test_hadolint() -> None:
    done = run([tool("hadolint"), "--failure-threshold", "style", str(DEPLOY / "Dockerfile")])
    assert done.returncode == 0, done.stdout


def test_checkov_dockerfile(checked: dict[str, dict[str, Any]]) -> None:
    results = checked["Dockerfile"]
    assert failed(results) == []
    assert results["skipped_checks"] == []


@pytest.mark.parametrize("name", OVERLAYS)
def test_checkov_manifests(name: str, checked: dict[str, dict[str, Any]]) -> None:
    results = checked[name]
    assert failed(results) == []
    for skipped in results["skipped_checks"]:
        assert skipped["check_result"]["suppress_comment"].strip(), skipped["check_id"]
