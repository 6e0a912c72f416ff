"""Crash points: off unless armed, refused in production, and a real SIGKILL when reached."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest
from pydantic import ValidationError

from journeys_runtime import crash
from journeys_runtime.settings import CommonSettings


def test_specs_name_a_known_point_and_an_optional_pass_count() -> None:
    assert crash.parse("executor.before_commit") == ("executor.before_commit", 1)
    assert crash.parse("projector.after_commit@7") == ("projector.after_commit", 7)
    with pytest.raises(ValueError, match="unknown crash point"):
        crash.parse("executor.somewhere")
    with pytest.raises(ValueError, match="at least 1"):
        crash.parse("executor.before_commit@0")


def test_settings_refuse_a_crash_point_in_production(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOURNEYS_CRASH_AT", "executor.before_commit")
    assert CommonSettings().crash_at == "executor.before_commit"
    monkeypatch.setenv("JOURNEYS_ENV", "production")
    monkeypatch.setenv("JOURNEYS_PATIENT_KEY_SECRET", "x" * 40)
    with pytest.raises(ValidationError, match="test-only"):
        CommonSettings()


def test_settings_refuse_an_unknown_point(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOURNEYS_CRASH_AT", "nowhere")
    with pytest.raises(ValidationError, match="unknown crash point"):
        CommonSettings()


def _run(spec: str | None, passes: int) -> subprocess.CompletedProcess[str]:
    code = (
        "import sys; from journeys_runtime import crash\n"
        f"crash.arm({spec!r})\n"
        f"for i in range({passes}):\n"
        "    crash.crash_point('executor.after_commit')\n"
        "    crash.crash_point('projector.before_commit')\n"
        "    print(i, flush=True)\n"
    )
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=30, check=False)  # fmt: skip


def test_the_armed_point_kills_the_process_on_its_nth_pass_and_no_sooner() -> None:
    done = _run("projector.before_commit@3", passes=5)
    assert done.returncode == -signal.SIGKILL
    assert done.stdout.split() == ["0", "1"]


def test_unarmed_points_do_nothing() -> None:
    done = _run(None, passes=3)
    assert done.returncode == 0
    assert done.stdout.split() == ["0", "1", "2"]
