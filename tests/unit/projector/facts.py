"""Builders of the facts the projector reads, shaped exactly as the api and executor send them."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from journeys_contracts import events as ev
from journeys_contracts.commands import StartRun
from journeys_contracts.definition import JourneyDefinition
from journeys_contracts.journeys import JourneyDefined
from journeys_runtime.settings import DEV_PATIENT_KEY_SECRET

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
SECRET = DEV_PATIENT_KEY_SECRET  # keys unsealed runs' patient ids, as the settings in tests do
CONTEXT: dict[str, Any] = {"id": "patient-123", "age": 72, "language": "en"}
DEFINITION = JourneyDefinition.model_validate(JourneyDefinition.model_json_schema()["examples"][0])


def journey(journey_id: uuid.UUID | None = None, at: datetime = T0) -> JourneyDefined:
    return JourneyDefined(
        journey_id=journey_id or uuid.uuid4(), definition=DEFINITION, created_at=at
    )


def start_run(story: Story, at: datetime | None = None) -> StartRun:
    return StartRun(
        run_id=story.run_id, journey_id=story.journey_id, patient_id=story.patient_id,
        patient_context=CONTEXT, definition=DEFINITION, requested_at=at or story.requested_at,
    )  # fmt: skip


@dataclass
class Story:
    """One run's events, with gapless seqs and a clock that ticks a second per event."""

    journey_id: uuid.UUID = field(default_factory=uuid.uuid4)
    run_id: uuid.UUID = field(default_factory=uuid.uuid4)
    patient_id: str = "patient-123"
    requested_at: datetime = T0
    events: list[ev.Event] = field(default_factory=list)

    def emit(self, kind: type[ev.EventBase], **fields: Any) -> ev.Event:
        seq = len(self.events) + 1
        event: ev.Event = kind(  # type: ignore[assignment]
            run_id=self.run_id, journey_id=self.journey_id, patient_id=self.patient_id,
            seq=seq, occurred_at=self.requested_at + timedelta(seconds=seq), **fields,
        )  # fmt: skip
        self.events.append(event)
        return event

    def started(self) -> Story:
        self.emit(ev.RunStarted, journey_name=DEFINITION.name, start_node_id="welcome",
                  patient_context=CONTEXT, definition=DEFINITION)  # fmt: skip
        return self

    def message(self, node_id: str) -> Story:
        message_id = uuid.uuid5(self.run_id, node_id)
        self.emit(ev.NodeEntered, node_id=node_id, node_type="MESSAGE")
        self.emit(ev.MessageRequested, node_id=node_id, message_id=message_id, message="Hi!")
        self.emit(ev.MessageSent, node_id=node_id, message_id=message_id, channel="console")
        return self

    def condition(self, node_id: str, next_node_id: str | None) -> Story:
        self.emit(ev.NodeEntered, node_id=node_id, node_type="CONDITIONAL")
        self.emit(ev.ConditionEvaluated, node_id=node_id, field="age", operator=">",
                  result=True, next_node_id=next_node_id)  # fmt: skip
        return self

    def delay(self, node_id: str, seconds: float = 86400) -> Story:
        self.emit(ev.NodeEntered, node_id=node_id, node_type="DELAY")
        due_at = self.requested_at + timedelta(seconds=len(self.events) + 1 + seconds)
        self.emit(ev.DelayStarted, node_id=node_id, timer_id=uuid.uuid5(self.run_id, node_id),
                  duration_seconds=seconds, due_at=due_at)  # fmt: skip
        return self

    def elapsed(self, node_id: str) -> Story:
        started = self.events[-1]
        assert isinstance(started, ev.DelayStarted)
        self.emit(ev.DelayElapsed, node_id=node_id, timer_id=started.timer_id,
                  due_at=started.due_at, fired_at=started.due_at)  # fmt: skip
        return self

    def completed(self, last_node_id: str) -> Story:
        self.emit(ev.RunCompleted, last_node_id=last_node_id)
        return self

    def failed(self, reason: str) -> Story:
        self.emit(ev.RunFailed, node_id=None, reason=reason)
        return self

    def cancelled(self, node_id: str | None) -> Story:
        self.emit(ev.RunCancelled, node_id=node_id, reason="patient opted out")
        return self

    @property
    def last_at(self) -> datetime:
        return self.events[-1].occurred_at


def full_run(story: Story | None = None) -> Story:
    """The example journey, start to end: welcome, age check, a day's wait, check-in."""
    s = story or Story()
    return (
        s.started().message("welcome").condition("age_check", "wait").delay("wait")
        .elapsed("wait").message("checkin").completed("checkin")
    )  # fmt: skip


def waiting_run(story: Story | None = None) -> Story:
    """The example journey up to its day's wait."""
    s = story or Story()
    return s.started().message("welcome").condition("age_check", "wait").delay("wait")


def erased(
    *stories: Story, patient_key: str, erasure_id: uuid.UUID | None = None
) -> ev.PatientErased:
    """The executor's answer to erasing the patient of `stories`, a second after their end."""
    return ev.PatientErased(
        erasure_id=erasure_id or uuid.uuid4(), patient_key=patient_key,
        erased_at=max(s.last_at for s in stories) + timedelta(seconds=1),
        run_ids=[s.run_id for s in stories],
    )  # fmt: skip
