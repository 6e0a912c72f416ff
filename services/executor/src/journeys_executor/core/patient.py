"""`receive`: one patient event, and what it asks of the patient's runs and journeys.

The patient's state on a partition is what de-duplication and look-back need: the receipt ids
of the events seen within the de-duplication window, the events kept for look-back, and the
journeys a trigger started for the patient whose `reentry` is `once`. Each is bounded by a time
window and a count, so the state of a patient stays small however many events they ever had.

An event seen before (the same receipt id: the same event id of the same patient, through any
way in) changes nothing. Otherwise it is kept, then, in this order:

1. every active run of the patient whose journey `exit_on` matches is exited;
2. every other active run of the patient waiting at a WAIT_FOR_EVENT node it matches resumes;
3. every journey with a matching trigger starts a run, unless `reentry` forbids it
   (`if_not_active`: the patient has an active run of the journey; `once`: a trigger started
   one for the patient before, or the partition still holds a run of it for them). The run id
   is derived from the journey, the patient key and the event id, so the same event never
   starts two runs of one journey.

Each is an input for `decide`, in that order; runs in order of run id, journeys of journey id.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TypeVar
from uuid import UUID

from journeys_contracts.definition import JourneyDefinition, WaitForEventNode
from journeys_executor.core.conditions import matches
from journeys_executor.core.inputs import EventInput, ExitRun, MatchEvent, PatientEvent, TriggerRun
from journeys_executor.core.state import RunState

_T = TypeVar("_T")


@dataclass(frozen=True)
class EventPolicy:
    dedup_seconds: float = 7 * 86400
    """How long an event's receipt id is remembered, so a repeat has no effect."""
    dedup_max: int = 1000
    """At most this many receipt ids per patient (the oldest are forgotten first)."""
    keep_seconds: float = 7 * 86400
    """How long an event is kept for look-back: the longest look-back a wait can use."""
    keep_max: int = 20
    """At most this many events per patient kept for look-back (the oldest go first)."""


@dataclass(frozen=True)
class PatientState:
    """A patient's events on a partition, as `receive` keeps them."""

    patient_key: str
    seen: tuple[tuple[UUID, datetime], ...] = ()
    """Receipt ids of the events seen within the window, with when each came; oldest first."""
    recent: tuple[PatientEvent, ...] = ()
    """The events kept for look-back, oldest first."""
    entered: frozenset[UUID] = field(default_factory=frozenset)
    """Journeys with `reentry: once` a trigger has started for this patient."""

    def pruned(self, now: datetime, policy: EventPolicy) -> PatientState:
        seen_since = now - timedelta(seconds=policy.dedup_seconds)
        kept_since = now - timedelta(seconds=policy.keep_seconds)
        seen = _last(tuple(s for s in self.seen if s[1] >= seen_since), policy.dedup_max)
        recent = tuple(e for e in self.recent if e.received_at >= kept_since)
        return replace(self, seen=seen, recent=_last(recent, policy.keep_max))

    def has_seen(self, receipt_id: UUID) -> bool:
        return any(seen == receipt_id for seen, _ in self.seen)


@dataclass(frozen=True)
class Reception:
    patient: PatientState
    """The patient's state after the event (pruned, and the event kept unless a duplicate)."""
    duplicate: bool
    inputs: list[EventInput]
    """For `decide`, in order: exits, then matches, then triggered starts."""


def triggered_run_id(journey_id: UUID, patient_key: str, event_id: str) -> UUID:
    """The run a journey's trigger starts for an event: the same for every redelivery."""
    return uuid.uuid5(journey_id, f"trigger:{patient_key}:{event_id}")


def receive(
    patient: PatientState | None,
    patient_key: str,
    patient_id: str,
    event: PatientEvent,
    runs: Iterable[RunState],
    journeys: Sequence[tuple[UUID, JourneyDefinition]],
    now: datetime,
    policy: EventPolicy,
) -> Reception:
    """What `event` of the patient does: `runs` are the patient's runs the partition holds (any
    state), `journeys` the journeys that have triggers."""
    state = (patient or PatientState(patient_key)).pruned(now, policy)
    if state.has_seen(event.receipt_id):
        return Reception(state, duplicate=True, inputs=[])
    kept = PatientState(
        patient_key,
        seen=_last((*state.seen, (event.receipt_id, event.received_at)), policy.dedup_max),
        recent=_last((*state.recent, event), policy.keep_max),
        entered=state.entered,
    )
    runs_list = list(runs)
    active = sorted((r for r in runs_list if not r.ended), key=lambda r: str(r.run_id))
    inputs: list[EventInput] = []
    exited: set[UUID] = set()
    for run in active:
        if any(
            matches(rule.event, rule.when, event, run.patient_context)
            for rule in run.definition.exit_on
        ):
            inputs.append(ExitRun(run.run_id, event))
            exited.add(run.run_id)
    for run in active:
        if run.run_id not in exited and _waits_for(run, event):
            inputs.append(MatchEvent(run.run_id, event))
    existing = {run.run_id for run in runs_list}
    still_active = {run.journey_id for run in active if run.run_id not in exited}
    entered = set(kept.entered)
    for journey_id, definition in sorted(journeys, key=lambda j: str(j[0])):
        run_id = triggered_run_id(journey_id, patient_key, event.event_id)
        start = TriggerRun(run_id, journey_id, patient_id, definition, event)
        context = start.patient_context
        if run_id in existing or not any(
            matches(rule.event, rule.when, event, context) for rule in definition.triggers
        ):
            continue
        if definition.reentry == "if_not_active" and journey_id in still_active:
            continue
        if definition.reentry == "once":
            if journey_id in entered or any(run.journey_id == journey_id for run in runs_list):
                continue
            entered.add(journey_id)
        inputs.append(start)
    return Reception(replace(kept, entered=frozenset(entered)), duplicate=False, inputs=inputs)


def _last(items: tuple[_T, ...], most: int) -> tuple[_T, ...]:
    """The last `most` items; none for 0 (where `items[-0:]` would be all of them)."""
    return items[max(0, len(items) - most) :] if most > 0 else ()


def _waits_for(run: RunState, event: PatientEvent) -> bool:
    if run.status != "waiting_event" or run.current_node_id is None:
        return False
    node = run.definition.node(run.current_node_id)
    return isinstance(node, WaitForEventNode) and matches(
        node.event, node.when, event, run.patient_context
    )
