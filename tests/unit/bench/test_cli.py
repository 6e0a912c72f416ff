"""The bench command line: what it measures and whether the run is recorded."""

from __future__ import annotations

import pytest

from journeys_bench import cli


def test_replicas_and_sealing_are_read_for_engine_throughput() -> None:
    args = cli._parser().parse_args(["engine-throughput", "--replicas", "1,2", "--sealing",
                                     "v2-only"])  # fmt: skip

    assert args.replicas == (1, 2)
    assert args.sealing == "v2-only"


@pytest.mark.parametrize("argv", [["--replicas", "0"], ["--replicas", "one"],
                                  ["--sealing", "maybe"]])  # fmt: skip
def test_refuses_replicas_and_sealing_it_cannot_run(argv: list[str]) -> None:
    with pytest.raises(SystemExit):
        cli._parser().parse_args(argv)


def test_patients_sets_the_patient_memory_size_and_leaves_the_record_alone() -> None:
    args = cli._parser().parse_args(["patient-memory", "--patients", "1000000"])

    assert args.patients == 1_000_000
    assert set(cli.BENCHMARKS) >= {"events-ingest", "event-resume-latency", "patient-memory"}
