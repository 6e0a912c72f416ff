"""The benchmarks' own machinery against real Kafka and PostgreSQL, at tiny sizes: every
injected run is counted to its end and every timer is seen fired, none early."""

from __future__ import annotations

from pathlib import Path

import pytest

from journeys_bench import engine, timers
from journeys_bench.harness import Infra

pytestmark = pytest.mark.integration


@pytest.fixture
def bench_infra(kafka_bootstrap: str, admin_database_url: str, tmp_path: Path) -> Infra:
    return Infra(kafka_bootstrap, admin_database_url, tmp_path, partitions=4)


def test_engine_throughput_counts_every_run_to_its_end(bench_infra: Infra) -> None:
    (result,) = engine.engine_throughput(bench_infra, runs=300, replicas=(1,)).values()

    assert result["finished"]
    assert result["completed"] == 300
    assert result["events"] == 300 * 13  # five steps: 13 events a run
    assert result["runs_per_s"] > 0
    assert result["rss"]["executor"]["peak_mb"] > 0
    assert result["event_records"] == {"v1": 300 * 13, "v2": 0}


@pytest.mark.parametrize(("sealing", "twins"), [("twins", 300 * 13), ("v2-only", 0)])
def test_sealed_engine_throughput_follows_runs_to_their_sealed_end(
    bench_infra: Infra, sealing: str, twins: int
) -> None:
    (result,) = engine.engine_throughput(bench_infra, runs=300, replicas=(1,),
                                         sealing=sealing).values()  # fmt: skip

    assert result["finished"]
    assert result["completed"] == 300
    assert result["event_records"] == {"v1": twins, "v2": 300 * 13}


def test_timer_punctuality_sees_every_timer_fire_and_none_early(bench_infra: Infra) -> None:
    result = timers.timer_punctuality(bench_infra, count=200, spread=2, lead=3)

    assert (result["fired"], result["missing"], result["duplicates"]) == (200, 0, 0)
    assert result["early"] == 0
    assert result["lateness"]["count"] == 200
