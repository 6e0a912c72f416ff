"""`python -m journeys_api`: serve, `migrate`, `wait-for-setup`; anything else is misuse."""

from __future__ import annotations

import pytest

from journeys_api.__main__ import main


def test_unknown_arguments_print_usage_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--now"]) == 2
    assert "usage: python -m journeys_api" in capsys.readouterr().err
