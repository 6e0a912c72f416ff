"""`python -m tests.faults`: run the fault scenarios, print the table, write the JSON."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

from tests.faults.scenarios import SCENARIOS, ScenarioResult, load_for, run_scenario, stack_options
from tests.faults.stack import fault_stack


def table(results: list[ScenarioResult]) -> str:
    checkers = list(dict.fromkeys(k for r in results for k in r.counts))
    lines = ["| scenario | runs accepted | seconds | " + " | ".join(checkers) + " | redelivered |",
             "|---|---:|---:|" + "---:|" * len(checkers) + "---:|"]  # fmt: skip
    for r in results:
        counts = " | ".join(str(r.counts.get(k, "")) for k in checkers)
        lines.append(f"| {r.name} | {r.accepted} | {r.seconds} | {counts} | {r.redelivered} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.faults")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--rate", type=float, default=40.0, help="triggers per second")
    parser.add_argument("--seconds", type=float, default=20.0, help="load duration")
    parser.add_argument("--out", type=Path, default=Path(".data/faults/results.json"))
    args = parser.parse_args()

    from tests.infra import start_local_infra

    root = Path(tempfile.mkdtemp(prefix="journeys-faults-"))
    kafka, db = os.environ.get("KAFKA_BOOTSTRAP_SERVERS"), os.environ.get("DATABASE_URL")
    infra = None if kafka and db else start_local_infra(root / "infra")
    kafka = kafka or (infra.kafka_bootstrap if infra else "")
    db = db or (infra.database_url if infra else "")
    results: list[ScenarioResult] = []
    try:
        for key in args.scenarios.split(","):
            load = load_for(key, args.rate, args.seconds)
            with fault_stack(kafka, db, root, **stack_options(key)) as stack:
                results.append(asyncio.run(run_scenario(key, stack, load)))
            print(table(results[-1:]).splitlines()[-1], flush=True)
    finally:
        if infra is not None:
            infra.stop()
        shutil.rmtree(root, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    report = {"at": datetime.now(UTC).isoformat(), "rate": args.rate, "seconds": args.seconds,
              "results": [asdict(r) | {"passed": r.passed} for r in results]}  # fmt: skip
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print("\n" + table(results))
    print(f"\nwritten to {args.out}")
    return 0 if all(r.passed for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
