"""Builders of the facts the projector reads, shaped exactly as the api and executor send them."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from journeys_contracts import events as ev
from journeys_contracts.commands import (
    RecordPatientEvent,
    RecordPatientEventSealed,
    StartRun,
    receipt_id,
)
from journeys_contracts.definition import JourneyDefinition
from journeys_contracts.journeys import JourneyDefined
from journeys_contracts.keys import patient_key
from journeys_runtime.sealing import seal_fields
from journeys_runtime.settings import DEV_PATIENT_KEY_SECRET
from journeys_runtime.shredding import DataKey, KeyEncryptionKey, wrap

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


def patient_event(
    patient_id: str = "patient-123", event_id: str = "evt-1",
    event_type: str = "intake_form.submitted", at: datetime = T0, source: str = "api",
) -> RecordPatientEvent:  # fmt: skip
    """An event of the patient as a way in records it, received a second after it occurred."""
    key = patient_key(SECRET, patient_id)
    return RecordPatientEvent(
        receipt_id=receipt_id(key, event_id), event_id=event_id, patient_key=key,
        patient_id=patient_id, event_type=event_type, occurred_at=at,
        received_at=at + timedelta(seconds=1), source=source, event_data={"score": 9},
    )  # fmt: skip


def sealed_patient_event(
    command: RecordPatientEvent, key: DataKey, kek: KeyEncryptionKey
) -> RecordPatientEventSealed:
    """`command` as a way in writes it when patient data is sealed: the data key wrapped."""
    data = seal_fields(command.model_dump(mode="json", by_alias=True), key, command.patient_key)
    data["dataKey"] = wrap(kek, command.patient_key, key).to_json()
    return RecordPatientEventSealed.model_validate(data)


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

    def triggered(self, by: RecordPatientEvent) -> Story:
        """Started by patient event `by` through one of the journey's triggers."""
        self.emit(ev.RunStarted, journey_name=DEFINITION.name, start_node_id="welcome",
                  patient_context=CONTEXT, definition=DEFINITION, trigger_event_id=by.event_id,
                  trigger_event_type=by.event_type, trigger_receipt_id=by.receipt_id)  # fmt: skip
        return self

    def wait_for(
        self, node_id: str, event_type: str = "intake_form.submitted", seconds: float = 172800
    ) -> Story:
        self.emit(ev.NodeEntered, node_id=node_id, node_type="WAIT_FOR_EVENT")
        due_at = self.requested_at + timedelta(seconds=len(self.events) + 1 + seconds)
        self.emit(ev.EventWaiting, node_id=node_id, event_type=event_type,
                  timer_id=uuid.uuid5(self.run_id, node_id), timeout_seconds=seconds,
                  due_at=due_at)  # fmt: skip
        return self

    def matched(self, node_id: str, event: RecordPatientEvent) -> Story:
        waiting = self.events[-1]
        assert isinstance(waiting, ev.EventWaiting)
        self.emit(ev.EventMatched, node_id=node_id, event_id=event.event_id,
                  event_type=event.event_type, receipt_id=event.receipt_id,
                  event_occurred_at=event.occurred_at, event_data=event.event_data,
                  cancelled_timer_id=waiting.timer_id)  # fmt: skip
        return self

    def timed_out(self, node_id: str) -> Story:
        waiting = self.events[-1]
        assert isinstance(waiting, ev.EventWaiting)
        self.emit(ev.EventTimedOut, node_id=node_id, timer_id=waiting.timer_id,
                  due_at=waiting.due_at, fired_at=waiting.due_at)  # fmt: skip
        return self

    def exited(self, node_id: str | None, event: RecordPatientEvent) -> Story:
        """Ended by patient event `event` through the journey's `exit_on`: run.exited, then
        the run.cancelled naming the same event."""
        waiting = self.events[-1]
        timer_id = waiting.timer_id if isinstance(waiting, ev.EventWaiting) else None
        self.emit(ev.RunExited, node_id=node_id, event_id=event.event_id,
                  event_type=event.event_type, receipt_id=event.receipt_id)  # fmt: skip
        self.emit(ev.RunCancelled, node_id=node_id, cancelled_timer_id=timer_id,
                  exit_event_id=event.event_id, exit_event_type=event.event_type)  # fmt: skip
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
