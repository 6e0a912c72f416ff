"""A patient's partition in miniature, for the pure core: events through `receive`, each input
through `decide`, run commands as the adapters send them; every event folded and kept."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from journeys_contracts import commands as cmd
from journeys_contracts import events as ev
from journeys_contracts.commands import receipt_id
from journeys_contracts.definition import JourneyDefinition
from journeys_executor.core import (
    EventPolicy,
    PatientEvent,
    PatientState,
    Rejection,
    RunState,
    decide,
    fold,
    receive,
)
from journeys_executor.core.decide import Input
from tests.unit.executor.helpers import PATIENT, T0

PATIENT_KEY = "a" * 64


def wait_for(
    node_id: str, event: str, timeout: float, on_event: str | None, on_timeout: str | None,
    lookback: float = 0, when: Any = None,
) -> dict[str, Any]:  # fmt: skip
    node = {"id": node_id, "type": "WAIT_FOR_EVENT", "event": event, "timeout_seconds": timeout,
            "lookback_seconds": lookback, "on_event_next_node_id": on_event,
            "on_timeout_next_node_id": on_timeout}  # fmt: skip
    if when is not None:
        field, operator, value = when
        node["when"] = {"field": field, "operator": operator, "value": value}
    return node


def events_journey(*nodes: dict[str, Any], **extra: Any) -> JourneyDefinition:
    return JourneyDefinition.model_validate(
        {"name": "events", "start_node_id": nodes[0]["id"], "nodes": list(nodes), **extra}
    )


def patient_event(event_id: str, kind: str, at: datetime, data: dict[str, Any] | None = None
                  ) -> PatientEvent:  # fmt: skip
    return PatientEvent(receipt_id=receipt_id(PATIENT_KEY, event_id), event_id=event_id,
                        type=kind, occurred_at=at, received_at=at, data=data or {})  # fmt: skip


class Partition:
    """One patient's runs and kept events; `journeys` are those with triggers."""

    def __init__(self, journeys: dict[UUID, JourneyDefinition] | None = None,
                 policy: EventPolicy | None = None) -> None:  # fmt: skip
        self.journeys = journeys or {}
        self.policy = policy or EventPolicy()
        self.patient: PatientState | None = None
        self.runs: dict[UUID, RunState] = {}
        self.log: dict[UUID, list[ev.RunEvent]] = {}
        self.now = T0
        self.rejections: list[str] = []

    @property
    def recent(self) -> tuple[PatientEvent, ...]:
        return self.patient.recent if self.patient else ()

    def apply(self, command: Input) -> Rejection | list[ev.RunEvent]:
        """Decide one input for its run, deliver every message it asks for, fold all."""
        state = self.runs.get(command.run_id)
        decision = decide(state, command, self.now, self.recent)
        if isinstance(decision, Rejection):
            self.rejections.append(decision.reason)
            return decision
        events = list(decision)
        state = decision.state
        while state is not None and state.pending_message is not None and not state.ended:
            record = cmd.RecordDelivery(run_id=state.run_id,
                                        message_id=state.pending_message.message_id,
                                        channel="console", delivered=True, at=self.now)  # fmt: skip
            more = decide(state, record, self.now, self.recent)
            assert not isinstance(more, Rejection), more.reason
            events += list(more)
            state = more.state
        assert state is not None
        self.runs[state.run_id] = state
        self.log.setdefault(state.run_id, []).extend(events)
        assert fold(None, self.log[state.run_id]) == state
        return events

    def start(self, definition: JourneyDefinition, journey_id: UUID | None = None,
              context: dict[str, Any] | None = None) -> UUID:  # fmt: skip
        run_id = uuid.uuid4()
        self.apply(cmd.StartRun(run_id=run_id, journey_id=journey_id or uuid.uuid4(),
                                patient_id=PATIENT, patient_context=context or {"id": PATIENT},
                                definition=definition, requested_at=self.now))  # fmt: skip
        return run_id

    def event(self, event_id: str, kind: str, data: dict[str, Any] | None = None) -> bool:
        """Receive a patient event now; False when it was a duplicate."""
        event = patient_event(event_id, kind, self.now, data)
        reception = receive(self.patient, PATIENT_KEY, PATIENT, event, list(self.runs.values()),
                            list(self.journeys.items()), self.now, self.policy)  # fmt: skip
        self.patient = reception.patient
        for step in reception.inputs:
            self.apply(step)
        return not reception.duplicate

    def fire(self, run_id: UUID) -> Rejection | list[ev.RunEvent]:
        """The run's pending timer fires (at now, or at its due time if later)."""
        timer = self.runs[run_id].pending_timer
        assert timer is not None
        self.now = max(self.now, timer.due_at)
        return self.apply(cmd.FireTimer(run_id=run_id, timer_id=timer.timer_id,
                                        due_at=timer.due_at, fired_at=self.now))  # fmt: skip

    def later(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)

    def kinds(self, run_id: UUID) -> list[str]:
        return [e.type.removeprefix("journeys.").removesuffix(".v1") for e in self.log[run_id]]
