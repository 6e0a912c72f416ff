"""The benchmarks' own machinery against real Kafka and PostgreSQL, at tiny sizes: every
injected run is counted to its end and every timer is seen fired, none early."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from journeys_bench import console, delivery, engine, events, imports, timers
from journeys_bench.harness import Infra
from journeys_stack.paths import data_dir

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


@pytest.fixture(scope="module")
def patient_memory(kafka_bootstrap: str, admin_database_url: str,
                   tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:  # fmt: skip
    """`patient-memory` at a tiny size: 200 patients written, then 16 real events for 3 of
    them (each already holding 5), so each passes the 20 events the executor keeps."""
    infra = Infra(kafka_bootstrap, admin_database_url, tmp_path_factory.mktemp("pm"), 4)
    return events.patient_memory(infra, patients=200, per_patient=5, check_patients=3,
                                 check_events=16)  # fmt: skip


def test_patient_memory_restores_the_written_records_as_the_executors_own(
    patient_memory: dict[str, Any],
) -> None:
    assert patient_memory["changelog_records"] == 200
    assert patient_memory["restore"]["rss_mb"] > 0
    bounded = patient_memory["bounded"]
    assert bounded["all_recorded"]
    # The executor read the 5 events written for each patient before its 16 more.
    assert bounded["seen_final"] == [21]
    assert 0 < bounded["recent_max"] <= 20


def test_patient_memory_keeps_the_last_20_events_of_a_patient_with_more(
    patient_memory: dict[str, Any],
) -> None:
    assert patient_memory["bounded"]["recent_max"] == 20


def test_events_ingest_finds_every_accepted_event_in_kafka(
    bench_infra: Infra, tmp_path: Path
) -> None:
    shared_bin = data_dir() / "bench" / "bin"  # vegeta, built once for `make bench` too
    shared_bin.mkdir(parents=True, exist_ok=True)
    (tmp_path / "bin").symlink_to(shared_bin)

    # Two replicas only: one replica's path is the returning patients' run below.
    result = events.events_ingest(bench_infra, tmp_path, seconds=1, workers=1,
                                  reference_records=500, batch=50, sealing=(True,),
                                  replicas=(2,), returning=120, warm_up=False)  # fmt: skip

    assert "sealed" not in result
    sealed = result["sealed-2"]
    assert sealed["api_replicas"] == 2
    assert sealed["status"].get("202", 0) > 0
    assert sealed["commands_in_kafka"] == sealed["events_accepted"] + sealed["warmup_events"]
    assert sealed["rss"]["api"]["peak_mb"] > 0
    assert sealed["rss"]["api-2"]["peak_mb"] > 0  # the second replica ran
    returning = result["sealed-returning"]
    assert returning["returning_patients"] == 120
    assert returning["warmup_events"] == 150  # 3 batches of 50 over the 120 patients
    assert returning["status"].get("202", 0) > 0
    assert returning["commands_in_kafka"] == returning["events_accepted"] + 150
    assert result["reference"]["sealed"]["records_per_s"] > 0


def test_delivery_throughput_follows_every_message_to_its_report(bench_infra: Infra) -> None:
    result = delivery.delivery_throughput(bench_infra, messages=300)

    assert result["finished"]
    assert result["reported"] == 300
    assert result["gateway"] == {"received": 300, "attempts": 300, "bad_signatures": 0}
    assert result["messages_per_s"] > 0


def test_import_throughput_follows_a_generated_file_to_its_end(
    bench_infra: Infra, tmp_path: Path
) -> None:
    result = imports.import_throughput(bench_infra, tmp_path, rows=2_000, upload_bytes=600_000,
                                       references=False)  # fmt: skip

    assert result["import"]["status"] == "completed"
    assert (result["import"]["rows"], result["import"]["accepted"]) == (2_000, 2_000)
    assert result["import"]["revenue"] == result["file"]["revenue"]
    assert result["plain_csv_script"]["rows_per_s"] > 0
    assert result["rss_mb"]["api"]["peak_mb"] > 0
    assert result["import"]["run_read_latency"]["count"] > 0
    assert result["rss_mb"]["importer"]["peak_mb"] > 0
    assert (result["large_upload"]["status"], result["large_upload"]["bytes"]) == (202, 600_000)
    assert result["large_upload"]["api_rss_mb"]["peak_mb"] > 0


def test_console_pages_runs_and_holds_live_timelines(bench_infra: Infra) -> None:
    result = console.console(bench_infra, runs=300, deep=2, asks=3, viewers=5, rate=10,
                             seconds=1)  # fmt: skip

    assert set(result["paging"]) == {"first_page", "page_3"}
    assert result["paging"]["first_page"]["count"] == 3
    viewers = result["viewers"]
    assert viewers["opened"] == 5
    assert viewers["missing"] == 0
    assert viewers["p99_ms_with"] > 0
