"""A migrated read-model database per test, on the session's real PostgreSQL."""

from __future__ import annotations

import pytest

from journeys_projector.migrations import apply


@pytest.fixture
def read_models(fresh_database: str) -> str:
    apply(fresh_database)
    return fresh_database
