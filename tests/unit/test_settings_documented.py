"""Every setting a service reads is documented: in the README's table or the service's own."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import AliasChoices
from pydantic_settings import BaseSettings

from journeys_api.settings import ApiSettings
from journeys_executor.settings import ExecutorSettings
from journeys_projector.settings import ProjectorSettings
from journeys_scheduler.settings import SchedulerSettings

ROOT = Path(__file__).resolve().parents[2]
SERVICES: dict[str, type[BaseSettings]] = {
    "api": ApiSettings, "executor": ExecutorSettings, "scheduler": SchedulerSettings,
    "projector": ProjectorSettings,
}  # fmt: skip


def variables(settings: type[BaseSettings]) -> list[str]:
    """The environment variable each field is read from."""
    prefix = settings.model_config.get("env_prefix", "")
    names = []
    for name, field in settings.model_fields.items():
        alias = field.validation_alias
        if isinstance(alias, AliasChoices):
            names.append(str(alias.choices[0]))
        elif isinstance(alias, str):
            names.append(alias)
        else:
            names.append(f"{prefix}{name}".upper())
    return names


@pytest.mark.parametrize("service", SERVICES)
def test_every_setting_is_in_a_readme(service: str) -> None:
    text = (ROOT / "README.md").read_text()
    own = ROOT / "services" / service / "README.md"
    if own.exists():
        text += own.read_text()
    missing = [name for name in variables(SERVICES[service]) if f"`{name}`" not in text]
    assert missing == [], f"document these in README.md or services/{service}/README.md"


def test_the_variables_are_read_as_named() -> None:
    assert "API_ANSWER_TIMEOUT_SECONDS" in variables(ApiSettings)
    assert "JOURNEYS_PATIENT_KEY_SECRET" in variables(ApiSettings)
    assert "SCHEDULER_GROUP_ID" in variables(SchedulerSettings)
