"""Smoke run of the fault suite inside `make test`: scenarios 1, 2, 5, 6 and 9, small load."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.faults.scenarios import Load, run_scenario
from tests.faults.stack import fault_stack

pytestmark = pytest.mark.faults


@pytest.mark.parametrize("scenario", ["1", "2", "5", "6", "9"])
async def test_every_checker_reads_zero_after_the_fault(
    scenario: str,
    kafka_bootstrap: str,
    admin_database_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    work: Path = tmp_path_factory.mktemp(f"faults{scenario}")
    with fault_stack(kafka_bootstrap, admin_database_url, work) as stack:
        result = await run_scenario(scenario, stack, Load(rate=20, seconds=9, fault_at=3))
    print(f"\n{result.name}: {result.accepted} runs, {result.counts}, extra {result.extra}")
    assert result.accepted > 100
    assert result.counts == dict.fromkeys(result.counts, 0), result.examples
