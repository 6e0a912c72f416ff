"""The command line: no argument runs the service, `migrate` migrates, anything else is refused."""

from __future__ import annotations

import pytest

from journeys_projector.__main__ import main


def test_an_unknown_command_prints_usage_and_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rebuild"]) == 2
    assert "usage" in capsys.readouterr().err
