"""The shared settings no service README covers are documented in the README's table."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic_settings import BaseSettings

from journeys_runtime.settings import ShreddingSettings, TopicSettings
from tests.unit.test_settings_documented import variables

README = Path(__file__).resolve().parents[3] / "README.md"


@pytest.mark.parametrize("settings", [TopicSettings, ShreddingSettings])
def test_every_shared_setting_is_in_the_readme(settings: type[BaseSettings]) -> None:
    text = README.read_text()
    assert [name for name in variables(settings) if f"`{name}`" not in text] == []
