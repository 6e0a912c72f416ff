"""A migrated read-model database per test, on the session's real PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from journeys_projector.migrations import apply
from tests.conftest import migrated_database


@pytest.fixture
def read_models(admin_database_url: str, migrated_templates: dict[Any, str]) -> Iterator[str]:
    yield from migrated_database(admin_database_url, migrated_templates, apply)
