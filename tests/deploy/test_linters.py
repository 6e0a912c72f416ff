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


def checkov(target: Path, framework: str) -> dict[str, Any]:
    uv = shutil.which("uv")
    assert uv, "uv is needed to run checkov from deploy/checks"
    done = run([uv, "run", "--project", str(CHECKOV_PROJECT), "--frozen", "--quiet",
                "checkov", "--file", str(target), "--framework", framework,
                "--output", "json", "--skip-download"])  # fmt: skip
    assert done.returncode in (0, 1), done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert "results" in report, f"checkov found nothing to check in {target}"
    assert report["summary"]["parsing_errors"] == 0
    return report["results"]


def failed(results: dict[str, Any]) -> list[str]:
    return [f"{c['check_id']} {c['resource']}: {c['check_name']}" for c in results["failed_checks"]]


def test_yamllint() -> None:
    done = run([tool("yamllint"), "--strict", "-c", str(DEPLOY / ".yamllint.yaml"), str(DEPLOY)])
    assert done.returncode == 0, done.stdout


def test_hadolint() -> None:
    done = run([tool("hadolint"), "--failure-threshold", "style", str(DEPLOY / "Dockerfile")])
    assert done.returncode == 0, done.stdout


def test_checkov_dockerfile() -> None:
    results = checkov(DEPLOY / "Dockerfile", "dockerfile")
    assert failed(results) == []
    assert results["skipped_checks"] == []


@pytest.mark.parametrize("name", OVERLAYS)
def test_checkov_manifests(name: str, overlays: dict[str, Rendered], tmp_path: Path) -> None:
    rendered = tmp_path / f"{name}.yaml"
    rendered.write_text(overlays[name].text)
    results = checkov(rendered, "kubernetes")
    assert failed(results) == []
    for skipped in results["skipped_checks"]:
        assert skipped["check_result"]["suppress_comment"].strip(), skipped["check_id"]
