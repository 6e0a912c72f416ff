"""The results table: each figure beside its target, and `met` only where the target holds."""

from __future__ import annotations

from typing import Any

from journeys_bench import report
from journeys_bench.hist import Latencies


def _engine(runs_per_s: float, events_per_s: float) -> dict[str, Any]:
    return {"runs": 100, "ended": 100, "runs_per_s": runs_per_s, "events_per_s": events_per_s}


def test_engine_throughput_is_met_only_when_both_rates_are() -> None:
    results = {"engine-throughput": {"1": _engine(2500, 12_000), "2": _engine(2500, 9_000)}}

    rows = report.rows(results)

    assert [met for *_, met in rows] == [True, False]
    assert "2,500 runs/s (12,000 events/s)" in rows[0][2]


def test_rows_below_the_targets_rate_are_context_not_verdicts() -> None:
    lag = {"p50_ms": 1.0, "p99_ms": 2.0}
    fast = {"latency": {"p50_ms": 5.0, "p99_ms": 9.0, "max_ms": 10.0}, "missing": 0,
            "achieved_runs_per_s": 250.0, "projection_lag": lag}  # fmt: skip

    rows = report.rows({"engine-latency": {"250": fast, "500": fast}})

    assert [(name, met) for name, _, _, met in rows] == [
        ("engine latency at 250 runs/s, trigger to completed", None),
        ("engine latency at 500 runs/s, trigger to completed", True),
        ("projection lag under the engine-latency load, 250 runs/s", None),
        ("projection lag under the engine-latency load, 500 runs/s", True),
    ]


def test_api_rows_name_every_answer_that_was_not_202() -> None:
    lat = {"p50_ms": 3.0, "p99_ms": 9.0}
    api = {
        "max": {"accepted_per_s": 3100.0, "latency": lat, "workers": 64},
        "steady": {"1500": {"latency": lat, "status": {"202": 10, "503": 2, "0": 1}}},
    }

    (most, steady) = report.rows({"api": api})

    assert most[3] is True
    assert steady[3] is False
    assert "2 answered 503, 1 answered nothing in 10 s" in steady[2]


def test_the_readme_block_is_replaced_and_the_rest_kept(tmp_path: Any) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{report.START}\nold\n{report.END}\noutro\n")
    run = {"started": "2026-11-23T10:00:00+00:00", "minutes": 1.0, "benchmarks": {},
           "machine": report.machine("3.9.1", "PostgreSQL 18")}  # fmt: skip

    path = report.write(run, tmp_path / "results", readme)

    text = readme.read_text()
    assert path.name == "2026-11-23.json"
    assert text.startswith("intro\n")
    assert text.endswith("outro\n")
    assert "old" not in text
    assert "| benchmark | target | measured | met |" in text


def test_latencies_are_percentiles_and_count_negative_values() -> None:
    lat = Latencies()
    for ms in range(1, 101):
        lat.record(ms / 1000)
    lat.record(-0.001)

    summary = lat.summary()

    assert summary["count"] == 101
    assert lat.negative == 1
    assert 49 <= summary["p50_ms"] <= 51
    assert 98 <= summary["p99_ms"] <= 100


def test_engine_rows_name_how_the_runs_were_sealed() -> None:
    twins = {**_engine(500, 6_500), "sealing": "twins", "event_records_per_s": 13_000}
    results = {"engine-throughput": {"1": twins}}

    ((label, _, measured, _),) = report.rows(results)

    assert label.startswith("engine throughput of sealed runs with v1 twins, 1 executor")
    assert "13,000 event records/s written, v1 twins included" in measured


def _ingest(events_per_s: float) -> dict[str, Any]:
    return {"latency": {"p50_ms": 20.0, "p99_ms": 40.0}, "status": {"202": 10, "0": 2},
            "batch": 500, "requests_per_s": events_per_s / 500, "events_per_s": events_per_s,
            "workers": 16, "commands_in_kafka": 6000, "events_accepted": 5000,
            "warmup_events": 1000, "rss": {"api": {"rest_mb": 80.0, "peak_mb": 95.0}}}  # fmt: skip


def test_event_ingest_is_judged_on_the_default_sealed_api_only() -> None:
    results = {"events-ingest": {"sealed": _ingest(21_000), "clear": _ingest(5_000),
                                 "sealed-2": {**_ingest(19_000), "api_replicas": 2},
                                 "reference": {"sealed": {"records_per_s": 9e4,
                                                          "record_bytes": 850}}}}  # fmt: skip

    rows = report.rows(results)

    assert [met for *_, met in rows] == [True, None, False, None]
    assert rows[2][0].endswith("sealed (the default), 2 API replicas")
    assert "21,000 events/s (42.0 req/s of 500)" in rows[0][2]
    assert "2 answered nothing in 10 s" in rows[0][2]
    assert "6,000 commands in Kafka for 6,000 accepted" in rows[0][2]
    assert "90,000 records/s sealed (850 B)" in rows[3][2]
    assert "events-ingest (sealed) | api | 80.0 | 95.0" in report.memory_table(
        {"benchmarks": results}
    )


def test_event_resume_is_met_only_under_100_ms_with_none_missing() -> None:
    def resume(p99: float, missing: int) -> dict[str, Any]:
        return {"latency": {"p50_ms": 10.0, "p99_ms": p99, "max_ms": 200.0}, "rate": 100,
                "runs": 10_000, "accepted": 10_000, "matched": 10_000 - missing,
                "missing": missing}  # fmt: skip

    verdicts = [report.rows({"event-resume-latency": resume(p99, missing)})[0][3]
                for p99, missing in [(90.0, 0), (120.0, 0), (90.0, 1)]]  # fmt: skip

    assert verdicts == [True, False, False]


def test_patient_records_keep_exactly_the_cap_of_events() -> None:
    bounded = {"patients": 100, "events_before": 5, "events_per_patient": 50,
               "all_recorded": True, "recent_max": 20, "seen_final": [55],
               "bytes_first_full_max": 9000, "bytes_final_max": 11_000}  # fmt: skip
    memory = {"patients": 100_000, "events_per_patient": 5, "changelog_mb": 260.0,
              "record_bytes_mean": 2700, "restore": {"seconds": 3.5, "rss_mb": 400.0},
              "bounded": bounded,
              "cap": {"events_kept_max": 20, "event_dedup_max": 1000, "bytes": 84_000}}  # fmt: skip

    (held, kept) = report.rows({"patient-memory": memory})
    too_many = report.rows({"patient-memory": {**memory, "bounded": {**bounded, "recent_max": 21}}})
    too_few = report.rows({"patient-memory": {**memory, "bounded": {**bounded, "recent_max": 10}}})

    assert "restore 3.5 s" in held[2]
    assert "RSS once restored 400.0 MB" in held[2]
    assert kept[3] is True
    assert too_many[1][3] is False
    assert too_few[1][3] is False
