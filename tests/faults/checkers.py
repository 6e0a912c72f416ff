"""The fault scenarios' checkers: pure functions over what the load accepted and what was observed.

Each returns the offending run (or message) ids; a scenario passes when every list is empty.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from typing import Any

from tests.faults.inject import Injected
from tests.faults.load import Accepted
from tests.faults.observe import Observed

FAILED = "journeys.run.failed.v1"
TERMINAL = {"journeys.run.completed.v1", FAILED, "journeys.run.cancelled.v1"}
STATUS_AFTER = {
    "journeys.run.started.v1": "in_progress",
    "journeys.node.entered.v1": "in_progress",
    "journeys.delay.started.v1": "waiting_delay",
    "journeys.delay.elapsed.v1": "in_progress",
    "journeys.event.waiting.v1": "waiting_event",
    "journeys.event.matched.v1": "in_progress",
    "journeys.event.timed_out.v1": "in_progress",
    "journeys.run.completed.v1": "completed",
    "journeys.run.failed.v1": "failed",
    "journeys.run.cancelled.v1": "cancelled",
}
CHECKERS = ("lost_ack", "dup_transition", "seq_gap", "dup_delivery", "early_timer",
            "stuck_run", "projection_divergence")  # fmt: skip


def _at(value: str) -> datetime:
    return datetime.fromisoformat(value)


def _ended(events: list[dict[str, Any]]) -> bool:
    return any(e["type"] in TERMINAL for e in events)


def lost_ack(accepted: dict[str, Accepted], seen: Observed) -> list[str]:
    """Accepted with a 202 but never started, or never ended once the faults stopped."""
    return sorted(r for r in accepted if not _ended(seen.events.get(r, [])))


def dup_transition(seen: Observed) -> list[str]:
    """A node entered twice in one run (the load's journeys have no cycles), or two
    message.sent for one message id."""
    bad = []
    for run_id, events in seen.events.items():
        entered = Counter(e["nodeId"] for e in events if e["type"] == "journeys.node.entered.v1")
        sent = Counter(e["messageId"] for e in events if e["type"] == "journeys.message.sent.v1")
        if any(n > 1 for n in entered.values()) or any(n > 1 for n in sent.values()):
            bad.append(run_id)
    return sorted(bad)


def seq_gap(seen: Observed) -> list[str]:
    return sorted(
        run_id
        for run_id, events in seen.events.items()
        if [e["seq"] for e in events] != list(range(1, len(events) + 1))
    )


def dup_delivery(seen: Observed) -> list[str]:
    """Message ids handed to the channel that no committed event asked for.

    Ids are derived from (run, seq), so a command replayed after a crash asks for the same id
    again and the channel's idempotency key absorbs it (counted apart, `redelivered`). A
    delivery under an id no committed `message.requested` carries would reach the patient a
    second time under a new key: that is the duplicate this counts.
    """
    requested = {
        e["messageId"]
        for events in seen.events.values()
        for e in events
        if e["type"] == "journeys.message.requested.v1"
    }
    return sorted(m for m in seen.channel if m not in requested)


def redelivered(seen: Observed) -> list[str]:
    """Same idempotency key handed over again (after a crash): harmless, reported."""
    return sorted(m for m, n in seen.channel.items() if n > 1)


def early_timer(seen: Observed) -> list[str]:
    bad = []
    for run_id, events in seen.events.items():
        for e in events:
            if e["type"] != "journeys.delay.elapsed.v1":
                continue
            due = _at(e["dueAt"])
            if _at(e["firedAt"]) < due or _at(e["occurredAt"]) < due:
                bad.append(run_id)
    return sorted(set(bad))


def stuck_run(seen: Observed, grace: timedelta = timedelta(seconds=2)) -> list[str]:
    """Not ended and not waiting on a timer that is still in the future (with a grace)."""
    bad = []
    for run_id, events in seen.events.items():
        if _ended(events):
            continue
        due = seen.timers.get(run_id)
        if due is None or due + grace < seen.now:
            bad.append(run_id)
    return sorted(bad)


def projection_divergence(seen: Observed) -> list[str]:
    """The read model differs from the fold of the run's events."""
    bad = []
    for run_id, events in seen.events.items():
        row = seen.runs.get(run_id)
        status, node = "queued", None
        for e in events:
            status = STATUS_AFTER.get(e["type"], status)
            if e["type"] == "journeys.run.started.v1":
                node = e["startNodeId"]
            elif e["type"] == "journeys.node.entered.v1":
                node = e["nodeId"]
        expected = (status, node, len(events), list(range(1, len(events) + 1)))
        actual = None
        if row is not None:
            actual = (row["status"], row["current_node_id"], row["last_seq"],
                      seen.run_events.get(run_id, []))  # fmt: skip
        if actual != expected:
            bad.append(run_id)
    return sorted(bad)


def injected_failed(injected: dict[str, Injected], seen: Observed) -> list[str]:
    """Injected runs whose last event is not `run.failed` (or that have none)."""
    return sorted(r for r in injected
                  if [e["type"] for e in seen.events.get(r, [])][-1:] != [FAILED])  # fmt: skip


def injected_dead_letters(injected: dict[str, Injected], seen: Observed) -> list[str]:
    """Injected runs whose command is not in the DLQ at the stage it fails at."""
    found = {(d["ce_subject"], d["dlq_stage"]) for d in seen.dlq}
    return sorted(r for r, what in injected.items() if (r, what.stage) not in found)


def check(accepted: dict[str, Accepted], seen: Observed) -> dict[str, list[str]]:
    return {
        "lost_ack": lost_ack(accepted, seen),
        "dup_transition": dup_transition(seen),
        "seq_gap": seq_gap(seen),
        "dup_delivery": dup_delivery(seen),
        "early_timer": early_timer(seen),
        "stuck_run": stuck_run(seen),
        "projection_divergence": projection_divergence(seen),
    }
