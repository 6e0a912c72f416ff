"""`import-throughput`: a generated clinic file of `rows` rows (about 115 bytes a row) uploaded
to one API, imported by one importer (sealed events on the commands topic), timed from the
first byte sent to `completed`; beside it, in the same run, what a plain single-process
`csv` + `Decimal` script does with the same file (parse and sum, nothing durable), aiokafka
alone producing the same number of sealed event records, the API's and the importer's RSS,
and the latency of `GET /journeys/runs/{id}` (a run row of the read model) asked 20 times a
second throughout. Then, on an API with no importer, an upload of `upload_bytes` (the file's
rows again and again, made as they are sent) and the API's RSS while it streams in.
"""

from __future__ import annotations

import asyncio
import csv
import json
import logging
import random
import shutil
import subprocess
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import psycopg

from journeys_bench.events import produce_reference
from journeys_bench.harness import PATIENT_KEY_SECRET, Infra, deployment
from journeys_bench.hist import Latencies
from journeys_bench.memory import RssSampler
from journeys_contracts.keys import patient_key

log = logging.getLogger(__name__)

HEADER = ["event_id", "clinic_id", "patient_id", "event_type", "event_timestamp",
          "appointment_id", "treatment_type", "revenue_amount", "doctor_id", "notes"]  # fmt: skip
TYPES = ["APPOINTMENT_CREATED", "APPOINTMENT_BOOKED", "APPOINTMENT_CANCELLED",
         "TREATMENT_COMPLETED"]  # fmt: skip
TREATMENTS = ["cleaning", "filling", "crown", "whitening", "root_canal"]
CHUNK = 1024 * 1024
PROBE_INTERVAL = 0.05


def clinic_file(path: Path, rows: int, bad_every: int = 10_000) -> dict[str, Any]:
    """Write the file, the same every time: every `bad_every`th row breaks a rule (an
    impossible date). Answers what it holds."""
    rng = random.Random(20251203)
    start = datetime(2025, 1, 6, tzinfo=UTC)
    revenue, bad = Decimal(0), 0
    with path.open("w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(HEADER)
        for i in range(rows):
            kind = TYPES[rng.randrange(4)]
            at = start + timedelta(minutes=rng.randrange(60 * 24 * 180))
            amount = f"{rng.randrange(2000, 90000) / 100:.2f}" if kind == TYPES[3] else ""
            cells = [f"ev-{i:08d}", f"clinic-{rng.randrange(20):02d}",
                     f"patient-{rng.randrange(200_000):06d}", kind, at.isoformat(),
                     f"appt-{rng.randrange(10**8):08d}",
                     rng.choice(TREATMENTS) if kind == TYPES[3] else "", amount,
                     f"doctor-{rng.randrange(40):02d}",
                     "follow up, \"x-ray\" done" if i % 50 == 0 else ""]  # fmt: skip
            if i % bad_every == bad_every - 1:
                cells[4], bad = "2025-02-30T09:00:00Z", bad + 1
            elif amount:
                revenue += Decimal(amount)
            writer.writerow(cells)
    return {"rows": rows, "bytes": path.stat().st_size, "bad": bad, "revenue": str(revenue)}


def plain_script(path: Path) -> dict[str, Any]:
    """The floor a user writes in an hour: csv.DictReader and Decimal, parse and sum."""
    began = time.monotonic()
    total, rows = Decimal(0), 0
    with path.open(newline="") as f:
        for row in csv.DictReader(f):
            rows += 1
            if row["revenue_amount"]:
                total += Decimal(row["revenue_amount"])
    seconds = time.monotonic() - began
    return {"rows_per_s": round(rows / seconds), "seconds": round(seconds, 2)}


def polars_script(path: Path) -> dict[str, Any]:
    """polars reading the file (every column as text) and summing the revenue as a decimal:
    the columnar floor. Twice; the faster run counts (the first pays the import of polars)."""
    import polars as pl

    runs = []
    for _ in range(2):
        began = time.monotonic()
        frame = pl.read_csv(path, infer_schema_length=0)
        revenue = frame.get_column("revenue_amount").cast(pl.Decimal(scale=2), strict=False)
        runs.append((frame.height / (time.monotonic() - began), str(revenue.sum())))
    rate, total = max(runs)
    return {"rows_per_s": round(rate), "revenue": total, "version": pl.__version__}


NODE_DIR = Path(__file__).resolve().parents[2] / "node"


def node_script(path: Path) -> dict[str, Any] | None:
    """Node.js with csv-parse (bench/node, its lockfile installed here with `npm ci`) parsing
    and summing the file in memory: the tool the import replaces. None without node and npm."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        log.warning("node or npm not found: the Node.js reference is not measured")
        return None
    # Fixed arguments: the programs found on PATH, our own script and file.
    subprocess.run([npm, "ci", "--silent", "--no-audit", "--no-fund"],  # noqa: S603
                   cwd=NODE_DIR, check=True, timeout=300)  # fmt: skip
    done = subprocess.run([node, str(NODE_DIR / "clinic_sum.js"), str(path)],  # noqa: S603
                          cwd=NODE_DIR, capture_output=True, text=True, check=True,
                          timeout=600)  # fmt: skip
    runs = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    best = max(runs, key=lambda r: r["rows_per_s"])
    version = subprocess.run([node, "--version"], capture_output=True, text=True,  # noqa: S603
                             check=True)  # fmt: skip
    return {"rows_per_s": round(best["rows_per_s"]), "revenue": best["revenue"],
            "node": version.stdout.strip(), "csv_parse": "7.0.3"}  # fmt: skip


def import_throughput(
    infra: Infra, work_dir: Path, rows: int, upload_bytes: int, references: bool = True
) -> dict[str, Any]:
    """`references`: also the faster parse-and-sum programs (polars, and Node.js with
    csv-parse, which needs node and npm)."""
    path = work_dir / f"clinic_events_{rows}.csv"
    work_dir.mkdir(parents=True, exist_ok=True)
    made = clinic_file(path, rows)
    result: dict[str, Any] = {"file": made, "plain_csv_script": plain_script(path)}
    if references:
        result["polars"] = polars_script(path)
        result["node_csv_parse"] = node_script(path)
    with deployment(infra, "imports", {"api": 1, "importer": 1}) as dep:
        run_id = _a_run(dep.database_url)
        with RssSampler(dep.pids()) as rss:
            result["import"] = asyncio.run(_import(dep.api_url, dep.stack.api_key, path, run_id))
        result["rss_mb"] = rss.summary()
    result["aiokafka_reference"] = asyncio.run(produce_reference(infra, min(rows, 200_000), 1000))
    with deployment(infra, "imports-upload", {"api": 1}) as dep, RssSampler(dep.pids()) as rss:
        result["large_upload"] = asyncio.run(_upload(dep.api_url, dep.stack.api_key,
                                                     path.read_bytes(), upload_bytes))  # fmt: skip
        result["large_upload"]["api_rss_mb"] = rss.summary()["api"]
    rate = result["import"]["rows_per_s"]
    result["ratios"] = {
        "plain_csv_script": round(rate / result["plain_csv_script"]["rows_per_s"], 3),
        "aiokafka_sealed": round(rate / result["aiokafka_reference"]["sealed"]["records_per_s"], 3),
    }  # fmt: skip
    for name in ("polars", "node_csv_parse"):
        best = (result.get(name) or {}).get("rows_per_s")
        if best:
            result["ratios"][name] = round(rate / best, 4)
    log.info("import-throughput: %s", result)
    return result


def _a_run(database_url: str) -> uuid.UUID:
    """One run row in the read model, for the latency probe to read."""
    run_id = uuid.uuid4()
    now = datetime.now(UTC)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO runs (run_id, journey_id, patient_id, patient_key, status, "
            "patient_context, created_at, updated_at) VALUES (%s, %s, %s, %s, 'completed', "
            "'{}', %s, %s)",
            (run_id, uuid.uuid4(), "bench-patient", patient_key(PATIENT_KEY_SECRET,
                                                                "bench-patient"), now, now),
        )  # fmt: skip
    return run_id


async def _import(url: str, api_key: str, path: Path, run_id: uuid.UUID) -> dict[str, Any]:
    headers = {"X-API-Key": api_key}
    probe = Latencies()
    stop = asyncio.Event()
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=600) as client:
        prober = asyncio.create_task(_probe(client, run_id, probe, stop))

        async def body() -> AsyncIterator[bytes]:
            with path.open("rb") as f:
                while chunk := f.read(CHUNK):
                    yield chunk

        began = time.monotonic()
        answer = await client.post("/imports", content=body(),
                                   headers={"content-type": "text/csv"})  # fmt: skip
        answer.raise_for_status()
        uploaded = time.monotonic() - began
        import_id = answer.json()["importId"]
        while True:
            state = (await client.get(f"/imports/{import_id}")).json()
            if state["status"] in ("completed", "failed"):
                break
            await asyncio.sleep(0.2)
        seconds = time.monotonic() - began
        stop.set()
        await prober
    return {
        "status": state["status"], "rows": state["rowsRead"], "accepted": state["accepted"],
        "rejected": state["rejected"], "revenue": state["revenue"],
        "upload_seconds": round(uploaded, 2), "seconds": round(seconds, 2),
        "rows_per_s": round(state["rowsRead"] / seconds),
        "importer_rows_per_s": state["rowsPerSecond"],
        "run_read_latency": probe.summary(),
    }  # fmt: skip


async def _upload(url: str, api_key: str, data: bytes, size: int) -> dict[str, Any]:
    """`size` bytes of clinic rows (the file's, over and over) uploaded; stored, not imported."""
    header, _, rows = data.partition(b"\n")
    sent = 0

    async def body() -> AsyncIterator[bytes]:
        nonlocal sent
        yield header + b"\n"
        sent = len(header) + 1
        while sent < size:
            for i in range(0, len(rows), CHUNK):
                piece = rows[i : i + CHUNK][: size - sent]
                sent += len(piece)
                yield piece
                if sent >= size:
                    return

    began = time.monotonic()
    async with httpx.AsyncClient(base_url=url, headers={"X-API-Key": api_key},
                                 timeout=600) as client:  # fmt: skip
        answer = await client.post("/imports", content=body(),
                                   headers={"content-type": "text/csv"})  # fmt: skip
    seconds = time.monotonic() - began
    return {"status": answer.status_code, "bytes": sent, "seconds": round(seconds, 1),
            "mb_per_s": round(sent / 1024**2 / seconds, 1)}  # fmt: skip


async def _probe(
    client: httpx.AsyncClient, run_id: uuid.UUID, latencies: Latencies, stop: asyncio.Event
) -> None:
    while not stop.is_set():
        began = time.monotonic()
        response = await client.get(f"/journeys/runs/{run_id}")
        if response.status_code == 200:
            latencies.record(time.monotonic() - began)
        await asyncio.sleep(PROBE_INTERVAL)
