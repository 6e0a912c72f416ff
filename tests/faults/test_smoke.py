"""Smoke run of the fault suite inside `make test`: scenario 5, and 8a with a 14 s outage,
small load: the harness and its checkers work, and the two faults no other test of
`make test` makes (a zombie executor fenced by its successor; the broker gone under load).

`make faults` runs every scenario at full length. In `make test`, other tests prove the paths
of the rest in seconds: crashes of the executor and the scheduler
(`tests/e2e/test_scale_and_restart.py`), poison and oversized records on every topic (each
service's integration tests: the executor's, the projector's dead letters, the scheduler's,
the delivery service's, the ingest's), which keeps `make test` inside its budget as scenarios
are added."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.faults.scenarios import OUTAGE_STACKS, Load, run_scenario
from tests.faults.stack import fault_stack

pytestmark = pytest.mark.faults


@pytest.mark.parametrize("scenario", ["5"])
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


async def test_kafka_away_for_14_s_every_request_still_gets_an_answer(
    kafka_bootstrap: str, admin_database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Scenario 8a: every checker 0, and every trigger answered within the client's 15 s,
    202 or 503 with Retry-After. The audit trail once made a 503 for Kafka wait a second
    produce timeout for its own record: 16,639 requests went unanswered. Then one in 973
    (CI): a command acknowledged just before the cut, 5 s of read-your-writes, 10 s for the
    audit record. The API's answer deadline (12 s, `deadline.py`) now bounds them together."""
    work: Path = tmp_path_factory.mktemp("faults8a")
    with fault_stack(kafka_bootstrap, admin_database_url, work, **OUTAGE_STACKS["8a"]) as stack:
        stack.outage_seconds = 14.0  # past the API's 12 s answer deadline, as in the full 30 s
        result = await run_scenario("8a", stack, Load(rate=20, seconds=24, fault_at=4))
    print(f"\n{result.name}: {result.accepted} runs, {result.counts}, extra {result.extra}")
    assert result.counts == dict.fromkeys(result.counts, 0), result.examples
    assert result.extra["http_503"] > 0  # the outage did reach the clients
    assert result.extra["unanswered_requests"] == 0
    assert result.extra["unacknowledged_runs"] == 0
