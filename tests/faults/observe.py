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
    delivered: set[str] = field(default_factory=set)  # message ids a gateway took (delivery)
    dlq: list[dict[str, str | None]] = field(default_factory=list)
    foreign: int = 0  # records on the events topic that are no event
    timer_ids: dict[str, str] = field(default_factory=dict)  # pending timer id -> run
    # Read only for the patient-event scenarios (`commands=True`):
    commands: list[dict[str, Any]] = field(default_factory=list)  # partition order, see below
    receipts: dict[str, dict[str, Any]] = field(default_factory=dict)  # receipt id -> row
    effects: set[tuple[str, int, str, str]] = field(default_factory=set)  # run, seq, receipt, what
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


# What the checkers need of a command: where it is, and what names it.
_COMMAND_FIELDS = ("type", "runId", "timerId", "eventId", "receiptId", "eventType", "receivedAt",
                   "source")  # fmt: skip


async def observe(
    bootstrap: str, topics: Topics, database_url: str, delivery_logs: list[Path],
    commands: bool = False,
) -> Observed:  # fmt: skip
    seen = Observed()
    by_run: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in await drain(bootstrap, topics.events):
        try:
            event = decode_event(record.value)
        except ValueError:  # pydantic's ValidationError included
            seen.foreign += 1  # poison injected by a scenario: not an event of any run
            continue
        run_id = getattr(event, "run_id", None)
        if run_id is not None:  # a patient's erasure names runs, it is none of them
            by_run[str(run_id)].append(json.loads(record.value))
    seen.events = dict(by_run)
    for record in await drain(bootstrap, topics.dlq, settle=0.5):
        seen.dlq.append({k: header(record.headers, k)
                         for k in ("dlq_source_topic", "dlq_stage", "dlq_error",
                                   "ce_subject")})  # fmt: skip
    if commands:
        seen.commands = await _commands(bootstrap, topics)
    with psycopg.connect(database_url, row_factory=dict_row) as conn:
        if commands:
            _event_read_models(conn, seen)
        for row in conn.execute("SELECT * FROM runs"):
            seen.runs[str(row["run_id"])] = row
        seqs: dict[str, list[int]] = defaultdict(list)
        for row in conn.execute("SELECT run_id, seq FROM run_events ORDER BY run_id, seq"):
            seqs[str(row["run_id"])].append(row["seq"])
        seen.run_events = dict(seqs)
        for row in conn.execute("SELECT timer_id, run_id, due_at FROM scheduler_timers"):
            seen.timers[str(row["run_id"])] = row["due_at"]
            seen.timer_ids[str(row["timer_id"])] = str(row["run_id"])
    for log in delivery_logs:
        if log.exists():
            seen.channel.update(_SENT.findall(log.read_text(errors="replace")))
    seen.now = datetime.now(UTC)
    return seen


async def _commands(bootstrap: str, topics: Topics) -> list[dict[str, Any]]:
    """Every command as `{"partition", "offset", <_COMMAND_FIELDS present>}`, in partition
    order: whether a patient event came before the timer or the exit that ended a wait is
    where the two are on their patient's partition, not when anyone sent them."""
    found = []
    for record in await drain(bootstrap, topics.commands):
        try:
            value = json.loads(record.value)
        except ValueError:
            continue
        if not isinstance(value, dict):
            continue
        command = {k: value[k] for k in _COMMAND_FIELDS if k in value}
        found.append({"partition": record.partition, "offset": record.offset, **command})
    return sorted(found, key=lambda c: (c["partition"], c["offset"]))


def _event_read_models(conn: psycopg.Connection[dict[str, Any]], seen: Observed) -> None:
    for row in conn.execute("SELECT * FROM event_receipts"):
        seen.receipts[str(row["receipt_id"])] = row
    for row in conn.execute("SELECT run_id, seq, receipt_id, effect FROM event_effects"):
        seen.effects.add((str(row["run_id"]), row["seq"], str(row["receipt_id"]), row["effect"]))
