"""The shipped manifests, rendered the way a cluster gets them (`kubectl kustomize`)."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
OVERLAYS = ("local", "production")
BIN = Path(sys.executable).parent  # the tools come with the dev environment (uv.lock)

Doc = dict[str, Any]


def tool(name: str) -> str:
    path = BIN / name
    assert path.exists(), f"{name} is missing from the environment: run `uv sync --frozen`"
    return str(path)


def render(directory: Path) -> str:
    done = subprocess.run(
        [tool("kubectl"), "kustomize", str(directory)],
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


@dataclass(frozen=True)
class Rendered:
    name: str
    text: str
    docs: list[Doc]

    def of_kind(self, *kinds: str) -> list[Doc]:
        return [d for d in self.docs if d["kind"] in kinds]

    def get(self, kind: str, name: str) -> Doc:
        found = [d for d in self.of_kind(kind) if d["metadata"]["name"] == name]
        assert len(found) == 1, f"{self.name}: {kind}/{name} found {len(found)} times"
        return found[0]

    def workloads(self) -> list[Doc]:
        return self.of_kind("Deployment", "StatefulSet", "Job")

    def config(self) -> dict[str, str]:
        return self.get("ConfigMap", "journeys-config")["data"]


@pytest.fixture(scope="session")
def overlays() -> dict[str, Rendered]:
    """Each overlay, rendered once per session."""
    out = {}
    for name in OVERLAYS:
        text = render(K8S / "overlays" / name)
        out[name] = Rendered(name, text, [d for d in yaml.safe_load_all(text) if d])
    return out
