"""Every setting a service reads is documented: in the README's table or the service's own."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import AliasChoices
from pydantic_settings import BaseSettings

from journeys_api.imports.settings import ImporterSettings
from journeys_api.ingest.settings import IngestSettings
from journeys_api.settings import ApiSettings
from journeys_delivery.settings import DeliverySettings
from journeys_executor.settings import ExecutorSettings
from journeys_projector.settings import ProjectorSettings
from journeys_scheduler.settings import SchedulerSettings

ROOT = Path(__file__).resolve().parents[2]
SERVICES: dict[str, type[BaseSettings]] = {
    "api": ApiSettings, "executor": ExecutorSettings, "scheduler": SchedulerSettings,
    "projector": ProjectorSettings, "ingest": IngestSettings, "delivery": DeliverySettings,
    "importer": ImporterSettings,
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


def test_the_names_derived_here_are_the_ones_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """Set each variable `variables` names for the API; the settings must pick every one up."""
    fields = list(ApiSettings.model_fields)
    names = variables(ApiSettings)
    values = {"answer_timeout_seconds": ("7", 7.0), "log_level": ("DEBUG", "DEBUG"),
              "topic_prefix": ("doc.", "doc."), "keep_alive_seconds": ("9", 9)}  # fmt: skip
    for field, (raw, _) in values.items():
        monkeypatch.setenv(names[fields.index(field)], raw)
    settings = ApiSettings()
    assert {field: getattr(settings, field) for field in values} == {
        field: parsed for field, (_, parsed) in values.items()
    }
