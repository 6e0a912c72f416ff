"""Checkers of the patient-event scenarios: pure functions over the events sent (with a 202),
the runs' events on the events topic, the commands topic in partition order, and the read model.

What the load says it sent only names what to look for; whether an effect had to happen is
read from the topics: a wait must take an event that reached its patient's partition after
the wait began (or within its look-back) and before whatever else ended the wait there.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from tests.faults.events_load import Sent
from tests.faults.observe import Observed

T = "journeys."
ENTERED, WAITING, MATCHED, TIMED_OUT, EXITED, STARTED, CANCELLED = (
    f"{T}node.entered.v1", f"{T}event.waiting.v1", f"{T}event.matched.v1",
    f"{T}event.timed_out.v1", f"{T}run.exited.v1", f"{T}run.started.v1", f"{T}run.cancelled.v1",
)  # fmt: skip
TERMINAL = {f"{T}run.completed.v1", f"{T}run.failed.v1", CANCELLED}
EVENT_CHECKERS = ("lost_event", "receipt_missing", "event_applied_twice", "run_started_twice",
                  "early_wait", "wait_ended_twice", "event_after_end", "timer_left",
                  "effects_divergence")  # fmt: skip

Position = tuple[int, int]  # (partition, offset) on the commands topic


def _at(value: str) -> datetime:
    return datetime.fromisoformat(value)


@dataclass
class Commands:
    """The first record of each command on the commands topic, by what names it."""

    events: dict[str, dict[str, Any]] = field(default_factory=dict)  # event id -> command
    timers: dict[str, Position] = field(default_factory=dict)  # timer id -> its FireTimer
    cancels: dict[str, Position] = field(default_factory=dict)  # run id -> its CancelRun
    starts: dict[str, Position] = field(default_factory=dict)  # run id -> its StartRun

    @classmethod
    def of(cls, seen: Observed) -> Commands:
        out = cls()
        for c in seen.commands:
            at, kind = (c["partition"], c["offset"]), c.get("type", "")
            if "record_patient_event" in kind and "eventId" in c:
                out.events.setdefault(c["eventId"], {**c, "at": at})
            elif "fire_timer" in kind and "timerId" in c:
                out.timers.setdefault(c["timerId"], at)
            elif "cancel_run" in kind and "runId" in c:
                out.cancels.setdefault(c["runId"], at)
            elif "start_run" in kind and "runId" in c:
                out.starts.setdefault(c["runId"], at)
        return out

    def of_event(self, event_id: str | None) -> Position | None:
        command = self.events.get(event_id or "")
        return command["at"] if command else None


@dataclass
class Wait:
    node_id: str
    entered_at: datetime
    lookback: float
    timer_id: str | None = None
    ends: list[dict[str, Any]] = field(default_factory=list)  # matched, timed_out, exited


def _lookback(events: list[dict[str, Any]], node_id: str) -> float:
    started = next((e for e in events if e["type"] == STARTED), None)
    nodes = started["definition"]["nodes"] if started else []
    node: dict[str, Any] = next((n for n in nodes if n.get("id") == node_id), {})
    return float(node.get("lookback_seconds") or 0)


def waits(events: list[dict[str, Any]]) -> tuple[list[Wait], bool]:
    """A run's waits in order, and whether an end came with no wait open (a wait resumed
    after another end, e.g. matched after it timed out)."""
    found: list[Wait] = []
    open_wait: Wait | None = None
    stray = False
    for e in events:
        if e["type"] == ENTERED and e.get("nodeType") == "WAIT_FOR_EVENT":
            open_wait = Wait(e["nodeId"], _at(e["occurredAt"]), _lookback(events, e["nodeId"]))
            found.append(open_wait)
        elif e["type"] == WAITING and open_wait is not None:
            open_wait.timer_id = e["timerId"]
        elif e["type"] in (MATCHED, TIMED_OUT, EXITED):
            wait = open_wait or (found[-1] if found and e["type"] != EXITED else None)
            if wait is not None:
                wait.ends.append(e)
            elif e["type"] != EXITED:
                stray = True
            open_wait = None
        elif e["type"] in TERMINAL:
            open_wait = None
    return found, stray


def _ended_by(end: dict[str, Any], run_id: str, commands: Commands) -> Position | None:
    """The command that brought `end` (an event of the run) about."""
    kind = end["type"]
    if kind == MATCHED and not end.get("lookback"):
        return commands.of_event(end["eventId"])
    if kind == EXITED:
        return commands.of_event(end["eventId"])
    if kind in (TIMED_OUT, f"{T}delay.elapsed.v1"):
        return commands.timers.get(end["timerId"])
    if kind == CANCELLED:
        return commands.cancels.get(run_id)
    if kind == STARTED:
        trigger = end.get("triggerEventId")
        return commands.of_event(trigger) if trigger else commands.starts.get(run_id)
    return None


def _run_ended_by(events: list[dict[str, Any]], run_id: str, c: Commands) -> Position | None:
    """The command that ended the run: the last input before its terminal event."""
    if not any(e["type"] in TERMINAL for e in events):
        return None
    for e in reversed(events):
        at = _ended_by(e, run_id, c)
        if at is not None and not (e["type"] == CANCELLED and any(x["type"] == EXITED
                                                                    for x in events)):  # fmt: skip
            return at
    return None


def _before(first: Position | None, second: Position) -> bool:
    return first is not None and first[0] == second[0] and first[1] < second[1]


def _lost_match(sent: Sent, at: Position, received: datetime, events: list[dict[str, Any]],
                commands: Commands) -> bool:  # fmt: skip
    found, _ = waits(events)
    wait = next((w for w in found if any(e.get("eventId") == sent.event_id for e in w.ends)), None)
    if wait is not None:
        return False
    for wait in found:
        if received < wait.entered_at - timedelta(seconds=wait.lookback):
            continue  # came before this wait could see it
        if wait.lookback == 0 and received <= wait.entered_at:
            continue
        ends = [_ended_by(e, "", commands) if e["type"] != CANCELLED else None for e in wait.ends]
        return not any(_before(end, at) for end in ends)
    # The run never reached a wait that could take it: lost unless the run ended before it.
    run_id = events[0]["runId"] if events else ""
    return not _before(_run_ended_by(events, run_id, commands), at)


def lost_event(sent: dict[str, Sent], seen: Observed) -> list[str]:
    """An event answered 202 whose effect is missing though nothing came before it on its
    patient's partition to take that effect away: a wait that had begun (or could look back
    to it) and had not ended, a run that had not ended (exit), a trigger (start)."""
    commands = Commands.of(seen)
    bad = []
    for event_id, s in sent.items():
        command = commands.events.get(event_id)
        if not s.forms or command is None:
            continue  # not accepted, or missing on the topic (`receipt_missing`)
        events = seen.events.get(s.target, [])
        at, received = command["at"], _at(command["receivedAt"])
        if s.expects == "start":
            lost = not any(e["type"] == STARTED and e.get("triggerEventId") == event_id
                           and e["journeyId"] == s.target
                           for es in seen.events.values() for e in es[:1])  # fmt: skip
        elif s.expects == "exit":
            lost = not any(e["type"] == EXITED and e["eventId"] == event_id for e in events) and (
                not _before(_run_ended_by(events, s.target, commands), at)
            )
        else:
            lost = _lost_match(s, at, received, events, commands)
        if lost:
            bad.append(event_id)
    return sorted(bad)


def receipt_missing(sent: dict[str, Sent], seen: Observed) -> list[str]:
    """An event answered 202 that is not on the commands topic, or whose receipt the read
    model does not have."""
    commands = Commands.of(seen)
    return sorted(
        event_id for event_id, s in sent.items()
        if s.forms and (event_id not in commands.events
                        or commands.events[event_id].get("receiptId") not in seen.receipts)
    )  # fmt: skip


def event_applied_twice(seen: Observed) -> list[str]:
    """One receipt taken twice by one run (matched at two waits, or matched and exited)."""
    bad = []
    for run_id, events in seen.events.items():
        taken = Counter(e["receiptId"] for e in events if e["type"] in (MATCHED, EXITED))
        if any(n > 1 for n in taken.values()):
            bad.append(run_id)
    return sorted(bad)


def run_started_twice(seen: Observed) -> list[str]:
    """A run started twice, or one event that started two runs of one journey."""
    bad = [r for r, events in seen.events.items()
           if sum(e["type"] == STARTED for e in events) > 1]  # fmt: skip
    by_event: dict[tuple[str, str], set[str]] = defaultdict(set)
    for run_id, events in seen.events.items():
        for e in events:
            if e["type"] == STARTED and e.get("triggerReceiptId"):
                by_event[(e["journeyId"], e["triggerReceiptId"])].add(run_id)
    bad += [f"{j} {r}" for (j, r), runs in by_event.items() if len(runs) > 1]
    return sorted(bad)


def early_wait(seen: Observed) -> list[str]:
    """A wait that timed out before its due time."""
    return sorted({
        run_id for run_id, events in seen.events.items() for e in events
        if e["type"] == TIMED_OUT
        and min(_at(e["firedAt"]), _at(e["occurredAt"])) < _at(e["dueAt"])
    })  # fmt: skip


def wait_ended_twice(seen: Observed) -> list[str]:
    """A wait both matched and timed out (or either twice, or exited after either), or an end
    of a wait that was not open."""
    bad = []
    for run_id, events in seen.events.items():
        found, stray = waits(events)
        if stray or any(len(w.ends) > 1 for w in found):
            bad.append(run_id)
    return sorted(bad)


def event_after_end(seen: Observed) -> list[str]:
    """Anything after a run's terminal event (a delay that elapsed after an exit, ...)."""
    return sorted(
        run_id for run_id, events in seen.events.items()
        if any(e["type"] in TERMINAL for e in events[:-1])
    )  # fmt: skip


def timer_left(seen: Observed) -> list[str]:
    """A timer still pending for a run that ended, or one that a match cancelled."""
    ended = {r for r, events in seen.events.items() if any(e["type"] in TERMINAL for e in events)}
    cancelled = {e["cancelledTimerId"] for events in seen.events.values() for e in events
                 if e["type"] == MATCHED and e.get("cancelledTimerId")}  # fmt: skip
    return sorted(t for t, run in seen.timer_ids.items() if run in ended or t in cancelled)


EFFECT = {STARTED: "started", MATCHED: "resumed", EXITED: "exited"}


def effects_divergence(seen: Observed) -> list[str]:
    """The read model's effects of events differ from the runs' events that name receipts."""
    expected = {
        (run_id, e["seq"], e.get("triggerReceiptId") or e.get("receiptId"), EFFECT[e["type"]])
        for run_id, events in seen.events.items() for e in events
        if e["type"] in EFFECT and (e.get("triggerReceiptId") or e.get("receiptId"))
    }  # fmt: skip
    return sorted({f"{r} {seq}" for r, seq, _, _ in expected ^ seen.effects})


def check_events(sent: dict[str, Sent], seen: Observed) -> dict[str, list[str]]:
    return {
        "lost_event": lost_event(sent, seen),
        "receipt_missing": receipt_missing(sent, seen),
        "event_applied_twice": event_applied_twice(seen),
        "run_started_twice": run_started_twice(seen),
        "early_wait": early_wait(seen),
        "wait_ended_twice": wait_ended_twice(seen),
        "event_after_end": event_after_end(seen),
        "timer_left": timer_left(seen),
        "effects_divergence": effects_divergence(seen),
    }


def outcomes(seen: Observed, began: datetime, ended: datetime) -> dict[str, int]:
    """How the waits ended (reported, not failed on), how many look-back matches took an
    event received before the fault began for a wait that began after it ended, and the event
    records on the commands topic by way in (`api`, `hook`)."""
    commands = Commands.of(seen)
    out: Counter[str] = Counter(
        f"event_records_from_{c['source'].split(':')[0]}" for c in seen.commands
        if "record_patient_event" in c.get("type", "") and "source" in c
    )  # fmt: skip
    for events in seen.events.values():
        for e in events:
            if e["type"] == MATCHED:
                out["matched_lookback" if e.get("lookback") else "matched_while_waiting"] += 1
                command = commands.events.get(e["eventId"])
                if (e.get("lookback") and command and _at(command["receivedAt"]) < began
                        and _at(e["occurredAt"]) > ended):  # fmt: skip
                    out["matched_lookback_across_fault"] += 1
            elif e["type"] == TIMED_OUT:
                out["timed_out"] += 1
            elif e["type"] == EXITED:  # where: the load's journeys name their nodes plainly
                out[f"exited_at_{e.get('nodeId')}"] += 1
    return dict(out)
