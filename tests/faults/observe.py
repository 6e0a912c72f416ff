"""Read back everything after a scenario: the events topic, read models, timers, the channel."""

from __future__ import annotations

import json
import re
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row

from journeys_contracts.envelope import header
from journeys_contracts.events import decode_event
from journeys_runtime.kafka import consumer
from journeys_runtime.topics import Topics

_SENT = re.compile(r"Sending message ([0-9a-f-]{36})")


@dataclass
class Observed:
    events: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # run -> topic order
    runs: dict[str, dict[str, Any]] = field(default_factory=dict)  # read model rows
    run_events: dict[str, list[int]] = field(default_factory=dict)  # run -> projected seqs
    timers: dict[str, datetime] = field(default_factory=dict)  # run -> pending due time
    channel: Counter[str] = field(default_factory=Counter)  # message id -> hand-overs
    dlq: list[dict[str, str | None]] = field(default_factory=list)
    foreign: int = 0  # records on the events topic that are no event
    now: datetime = field(default_factory=lambda: datetime.now(UTC))


async def drain(bootstrap: str, topic: str, settle: float = 1.5) -> list[Any]:
    c = consumer(bootstrap, None, [topic])
    await c.start()
    records: list[Any] = []
    try:
        quiet_since = time.monotonic()
        while time.monotonic() - quiet_since < settle:
            batches = await c.getmany(timeout_ms=300)
            for batch in batches.values():
                records.extend(batch)
                quiet_since = time.monotonic()
        return records
    finally:
        await c.stop()


async def observe(
    bootstrap: str, topics: Topics, database_url: str, executor_logs: list[Path]
) -> Observed:
    seen = Observed()
    by_run: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in await drain(bootstrap, topics.events):
        try:
            event = decode_event(record.value)
        except ValueError:  # pydantic's ValidationError included
            seen.foreign += 1  # poison injected by a scenario: not an event of any run
            continue
        by_run[str(event.run_id)].append(json.loads(record.value))
    seen.events = dict(by_run)
    for record in await drain(bootstrap, topics.dlq, settle=0.5):
        seen.dlq.append({k: header(record.headers, k)
                         for k in ("dlq_source_topic", "dlq_stage", "dlq_error",
                                   "ce_subject")})  # fmt: skip
    with psycopg.connect(database_url, row_factory=dict_row) as conn:
        for row in conn.execute("SELECT * FROM runs"):
            seen.runs[str(row["run_id"])] = row
        seqs: dict[str, list[int]] = defaultdict(list)
        for row in conn.execute("SELECT run_id, seq FROM run_events ORDER BY run_id, seq"):
            seqs[str(row["run_id"])].append(row["seq"])
        seen.run_events = dict(seqs)
        for row in conn.execute("SELECT run_id, due_at FROM scheduler_timers"):
            seen.timers[str(row["run_id"])] = row["due_at"]
    for log in executor_logs:
        if log.exists():
            seen.channel.update(_SENT.findall(log.read_text(errors="replace")))
    seen.now = datetime.now(UTC)
    return seen
