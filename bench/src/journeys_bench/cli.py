"""`python -m journeys_bench [benchmark ...]`: run benchmarks, write results and the table.

With no benchmark named, every benchmark runs in one go and the results go to
`bench/results/<date>.json` and the table in `bench/README.md`; naming some (or changing
what one measures: `--replicas`, `--sealing`) runs just those and writes
`.data/bench/last.json`, leaving the recorded run alone.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from journeys_bench import (
    api,
    console,
    delivery,
    engine,
    events,
    forgetting,
    imports,
    isolation,
    projection,
    references,
    report,
    timers,
)
from journeys_bench.harness import Infra, infra
from journeys_runtime.logs import configure_logging
from journeys_stack.paths import KAFKA_POM, REPO_ROOT, data_dir

log = logging.getLogger(__name__)

BENCH_DIR = REPO_ROOT / "bench"


@dataclasses.dataclass(frozen=True)
class Sizes:
    runs: int = 20_000
    replicas: tuple[int, ...] = (1, 2, 4)
    latency_rates: tuple[int, ...] = (500, 250)
    latency_seconds: float = 60
    api_seconds: int = 30
    api_rates: tuple[int, ...] = (300, 1500)  # the overload last: it leaves a backlog
    api_workers: int = 64
    timers: int = 100_000
    timer_window: float = 120
    timer_lead: float = 60
    timer_steps: tuple[int, ...] = (10_000, 100_000, 1_000_000)
    near_timers: int = 2000
    kafka_records: int = 200_000
    postgres_rows: int = 100_000
    forgetting_runs: int = 20_000
    forgetting_grace: float = 5.0
    sealing: str = "off"  # how engine-throughput starts its runs: engine.SEALINGS
    events_seconds: int = 20
    events_workers: int = 16
    events_reference: int = 100_000
    events_returning: int = 50_000  # patients with a data key before the clock starts
    resume_runs: int = 10_000
    resume_rate: int = 100  # events/s
    resume_batch: int = 10  # events a request
    patients: int = 100_000
    bounded_patients: int = 100
    bounded_events: int = 50
    delivery_messages: int = 30_000
    isolation_runs: int = 1500
    isolation_rate: float = 100.0  # email runs/s, and as many SMS runs beside them
    import_rows: int = 1_000_000
    upload_bytes: int = 1024**3  # the upload of import-throughput's RSS bound
    console_runs: int = 10_000
    console_deep: int = 200  # the deep page measured: this many "Next page" links in
    console_asks: int = 50
    console_viewers: int = 200
    console_rate: int = 50  # runs/s while the live timelines are open
    console_seconds: float = 30


# Small enough to check that every benchmark still works; the figures mean nothing.
QUICK = Sizes(runs=1000, replicas=(1, 2), latency_rates=(50,), latency_seconds=5, api_seconds=5,
              api_rates=(100,), api_workers=8, timers=500, timer_window=5, timer_lead=5,
              timer_steps=(1000, 5000), near_timers=100, kafka_records=5000,
              postgres_rows=5000, forgetting_runs=500, events_seconds=3, events_workers=2,
              events_reference=2000, events_returning=1000, resume_runs=100, resume_rate=50,
              patients=1000, bounded_patients=10, bounded_events=25,
              delivery_messages=500, isolation_runs=100, import_rows=5000,
              upload_bytes=20 * 1024**2, console_runs=300, console_deep=2, console_asks=5,
              console_viewers=5, console_rate=10, console_seconds=3)  # fmt: skip

Benchmark = Callable[[Infra, Sizes, Path], Any]
BENCHMARKS: dict[str, Benchmark] = {
    "references": lambda i, s, _: references.references(i, s.kafka_records, s.postgres_rows),
    "engine-throughput": lambda i, s, _: engine.engine_throughput(i, s.runs, s.replicas,
                                                                  s.sealing),
    "engine-latency": lambda i, s, _: engine.engine_latency(i, s.latency_rates,
                                                            s.latency_seconds),
    "projection": lambda i, s, _: projection.projection(i, s.runs),
    "api": lambda i, s, work: api.api_triggers(i, work, s.api_seconds, s.api_rates,
                                               s.api_workers),
    "timer-punctuality": lambda i, s, _: timers.timer_punctuality(i, s.timers, s.timer_window,
                                                                  s.timer_lead),
    "timer-scale": lambda i, s, _: timers.timer_scale(i, s.timer_steps, s.near_timers),
    "forgetting": lambda i, s, _: forgetting.forgetting(i, s.forgetting_runs,
                                                        s.forgetting_grace),
    "events-ingest": lambda i, s, work: events.events_ingest(i, work, s.events_seconds,
                                                             s.events_workers,
                                                             s.events_reference,
                                                             returning=s.events_returning),
    "event-resume-latency": lambda i, s, _: events.event_resume_latency(i, s.resume_runs,
                                                                        s.resume_rate,
                                                                        s.resume_batch),
    "patient-memory": lambda i, s, _: events.patient_memory(i, s.patients, 5,
                                                            s.bounded_patients,
                                                            s.bounded_events),
    "delivery-throughput": lambda i, s, _: delivery.delivery_throughput(i, s.delivery_messages),
    "delivery-isolation": lambda i, s, _: isolation.delivery_isolation(i, s.isolation_runs,
                                                                       s.isolation_rate),
    "import-throughput": lambda i, s, work: imports.import_throughput(i, work, s.import_rows,
                                                                     s.upload_bytes),
    "console": lambda i, s, _: console.console(i, s.console_runs, s.console_deep,
                                               s.console_asks, s.console_viewers,
                                               s.console_rate, s.console_seconds),
}  # fmt: skip


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m journeys_bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    # No `choices`: argparse (3.11) checks an empty list against them and refuses it.
    parser.add_argument(
        "benchmarks",
        nargs="*",
        metavar="benchmark",
        help=f"any of {', '.join(BENCHMARKS)} (default: all, recorded)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="tiny sizes: checks the benchmarks work, measures nothing",
    )
    parser.add_argument(
        "--forgetting-runs",
        type=int,
        metavar="N",
        help=f"ended runs for `forgetting` (default {Sizes.forgetting_runs:,})",
    )
    parser.add_argument(
        "--patients",
        type=int,
        metavar="N",
        help=f"patients held for `patient-memory` (default {Sizes.patients:,})",
    )
    parser.add_argument(
        "--replicas",
        type=_replicas,
        metavar="N[,N...]",
        help="executor replicas for `engine-throughput`, one measure each (default "
        f"{','.join(map(str, Sizes.replicas))})",
    )
    parser.add_argument(
        "--sealing",
        choices=list(engine.SEALINGS),
        help="how `engine-throughput` starts its runs: off, StartRun v1 (default); twins, "
        "StartRunSealed with the executor writing sealed events on v2 and their clear twins "
        "on v1 (EXECUTOR_EMIT_EVENTS_V1=true); v2-only, StartRunSealed without the twins",
    )
    return parser


def _replicas(text: str) -> tuple[int, ...]:
    try:
        counts = tuple(int(part) for part in text.split(","))
    except ValueError:
        counts = ()
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError(f"expected counts like 1 or 1,2,4, but got {text!r}")
    return counts


def _versions(shared: Infra) -> tuple[str, str]:
    match = re.search(r"<artifactId>kafka_[\d.]+</artifactId>\s*<version>([^<]+)",
                      KAFKA_POM.read_text())  # fmt: skip
    with psycopg.connect(shared.database_url) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    return (match.group(1) if match else "?"), f"PostgreSQL {row[0] if row else '?'}"


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    unknown = [name for name in args.benchmarks if name not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
    configure_logging("bench")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    chosen = args.benchmarks or list(BENCHMARKS)
    sizes = QUICK if args.quick else Sizes()
    if args.forgetting_runs:
        sizes = dataclasses.replace(sizes, forgetting_runs=args.forgetting_runs)
    if args.patients:
        sizes = dataclasses.replace(sizes, patients=args.patients)
    if args.replicas:
        sizes = dataclasses.replace(sizes, replicas=args.replicas)
    if args.sealing:
        sizes = dataclasses.replace(sizes, sealing=args.sealing)
    work = data_dir() / "bench"
    started = datetime.now(UTC)
    clock = time.monotonic()
    results: dict[str, Any] = {}
    with infra(work) as shared:
        kafka_version, postgres_version = _versions(shared)
        for name in chosen:
            log.info("benchmark %s", name)
            began = time.monotonic()
            results[name] = BENCHMARKS[name](shared, sizes, work)
            log.info("benchmark %s took %.0f s", name, time.monotonic() - began)
    run = {
        "started": started.isoformat(timespec="seconds"),
        "minutes": round((time.monotonic() - clock) / 60, 1),
        "quick": args.quick,
        "machine": report.machine(kafka_version, postgres_version),
        "sizes": dataclasses.asdict(sizes),
        "benchmarks": results,
    }
    print("\n" + report.render(run), flush=True)
    # The recorded table is of the default run only: naming benchmarks or changing what
    # they measure leaves it alone.
    if args.benchmarks or args.quick or args.replicas or args.sealing or args.patients:
        last = work / "last.json"
        last.write_text(json.dumps(run, indent=2) + "\n")
        print(f"\nResults: {last}")
    else:
        path = report.write(run, BENCH_DIR / "results", BENCH_DIR / "README.md")
        print(f"\nResults: {path}; table: {BENCH_DIR / 'README.md'}")
    return 0
