"""HTTP load on `POST /journeys/{id}/trigger` with vegeta, the whole stack running.

Two kinds of attack: open-ended (as many requests as `workers` connections carry, to find
the throughput) and constant-rate (the latency at each given rate, free of coordinated omission:
vegeta sends on schedule whether or not earlier answers came). Every result is decoded
from vegeta's CSV into an HdrHistogram.
"""

from __future__ import annotations

import base64
import csv
import json
import logging
import subprocess
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from journeys_bench.harness import Deployment, Infra, deployment
from journeys_bench.hist import Latencies
from journeys_bench.load import FIVE_STEP
from journeys_bench.memory import RssSampler
from journeys_bench.tools import vegeta

log = logging.getLogger(__name__)

OPEN_ENDED_CEILING = 8000  # req/s: targets are written for at most this rate, open-ended


def _targets(path: Path, url: str, api_key: str, count: int) -> None:
    """`count` triggers for distinct patients, each with its own Idempotency-Key: a repeated
    key would be an idempotent replay, cheaper than a trigger."""
    with path.open("w") as out:
        for _ in range(count):
            i = uuid.uuid4().int % 10**9
            body = {"id": f"bench-api-{i}", "age": 30 + i % 50}
            target = {
                "method": "POST",
                "url": url,
                "body": base64.b64encode(json.dumps(body).encode()).decode(),
                "header": {
                    "Content-Type": ["application/json"],
                    "Idempotency-Key": [str(uuid.uuid4())],
                    "X-API-Key": [api_key],
                },
            }
            out.write(json.dumps(target) + "\n")


def _attack(tool: Path, url: str, api_key: str, out_dir: Path, name: str, seconds: int,
            rate: int, workers: int) -> dict[str, Any]:  # fmt: skip
    """rate 0 means open-ended: `workers` requests in flight at all times."""
    targets = out_dir / f"{name}.targets.jsonl"
    _targets(targets, url, api_key, (rate or OPEN_ENDED_CEILING) * seconds + 1000)
    return attack(tool, targets, out_dir / f"{name}.bin", seconds, rate, workers)


def attack(tool: Path, targets: Path, results: Path, seconds: int, rate: int,
           workers: int) -> dict[str, Any]:  # fmt: skip
    """vegeta on pre-generated `targets` (JSON lines, base64 bodies): rate 0 means
    open-ended, `workers` requests in flight at all times. Latencies are of the 202s."""
    command = [
        str(tool), "attack", f"-targets={targets}", "-format=json", "-lazy",
        f"-duration={seconds}s", f"-rate={rate}/s", "-timeout=10s", "-keepalive=true",
        f"-output={results}",
    ]  # fmt: skip
    command += [f"-workers={workers}", f"-max-workers={workers}"] if rate == 0 else []
    subprocess.run(command, check=True)  # noqa: S603
    encoded = subprocess.run(  # noqa: S603
        [str(tool), "encode", "--to=csv", str(results)], check=True, capture_output=True,
        text=True,
    ).stdout  # fmt: skip
    latency = Latencies()
    codes: Counter[str] = Counter()
    first = last = None
    for row in csv.reader(encoded.splitlines()):
        at, code, nanos = int(row[0]), row[1], int(row[2])
        codes[code] += 1
        if code == "202":
            latency.record(nanos / 1e9)
            end = at + nanos
            first = at if first is None else min(first, at)
            last = end if last is None else max(last, end)
    span = (last - first) / 1e9 if first is not None and last is not None else 0.0
    accepted = codes.get("202", 0)
    return {
        "rate": rate or "max",
        "workers": workers if rate == 0 else None,
        "seconds": seconds,
        "requests": sum(codes.values()),
        "status": dict(codes),
        "accepted_per_s": round(accepted / span, 1) if span else 0.0,
        "span_seconds": round(span, 2),
        "latency": latency.summary(),
    }


def api_triggers(infra: Infra, work_dir: Path, seconds: int, rates: tuple[int, ...],
                 workers: int) -> dict[str, Any]:  # fmt: skip
    """The API and what its answer waits for: PostgreSQL (idempotency keys), Kafka (acks=all)
    and the projector (read-your-writes). The executor is left out: it would fall behind
    at these rates (see the engine rows) and take the CPU the API is measured on."""
    tool = vegeta(work_dir / "bin")
    services = {"projector": 1, "api": 1}
    with deployment(infra, "api", services) as dep:
        return _run(dep, tool, work_dir, seconds, rates, workers)


def _run(dep: Deployment, tool: Path, work_dir: Path, seconds: int, rates: tuple[int, ...],
         workers: int) -> dict[str, Any]:  # fmt: skip
    key = dep.stack.api_key
    response = httpx.post(f"{dep.api_url}/journeys", json=FIVE_STEP, timeout=30,
                          headers={"X-API-Key": key})  # fmt: skip
    response.raise_for_status()
    url = f"{dep.api_url}/journeys/{response.json()['journeyId']}/trigger"
    out = work_dir / dep.name
    out.mkdir(parents=True, exist_ok=True)
    with RssSampler(dep.pids()) as rss:
        log.info("api: warm-up, 200 req/s for 5 s")
        _attack(tool, url, key, out, "warmup", 5, 200, 0)
        log.info("api: open-ended load, %d connections for %d s", workers, seconds)
        most = _attack(tool, url, key, out, "max", seconds, 0, workers)
        log.info("api: %s", most)
        steady = {}
        for rate in rates:
            log.info("api: %d req/s for %d s", rate, seconds)
            steady[str(rate)] = _attack(tool, url, key, out, f"steady-{rate}", seconds, rate, 0)
            log.info("api: %s", steady[str(rate)])
    return {"max": most, "steady": steady, "rss": rss.summary()}
