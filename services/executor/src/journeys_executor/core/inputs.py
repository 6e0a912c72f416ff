"""The core's inputs that patient events make: they never travel on the wire as they are.

A `RecordPatientEvent` command is about a patient, not a run: `receive` (in `patient.py`)
turns it into one input per run it concerns, each decided by `decide` like a command: start a
run (`TriggerRun`), resume a run waiting for it (`MatchEvent`), end a run (`ExitRun`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from journeys_contracts.definition import JourneyDefinition

TRIGGER_TYPE = "journeys.executor.trigger_run"
MATCH_TYPE = "journeys.executor.match_event"
EXIT_TYPE = "journeys.executor.exit_run"


@dataclass(frozen=True)
class PatientEvent:
    """A patient event as the executor keeps it: opened, and without the patient's id (the
    partition's patient state names the patient by key)."""

    receipt_id: UUID
    event_id: str
    type: str
    occurred_at: datetime
    received_at: datetime
    data: dict[str, Any]

    def as_context(self) -> dict[str, Any]:
        """The event as conditions read it, under `event`: `event.type`, `event.data.x`, …"""
        return {
            "id": self.event_id,
            "type": self.type,
            "occurredAt": self.occurred_at.isoformat().replace("+00:00", "Z"),
            "data": self.data,
        }


@dataclass(frozen=True)
class TriggerRun:
    """Start run `run_id` of a journey whose trigger `event` matched."""

    run_id: UUID
    journey_id: UUID
    patient_id: str
    definition: JourneyDefinition
    event: PatientEvent
    type: str = TRIGGER_TYPE

    @property
    def patient_context(self) -> dict[str, Any]:
        """The event's data, the patient's id as `id`, and the event itself as `event`."""
        return {**self.event.data, "id": self.patient_id, "event": self.event.as_context()}


@dataclass(frozen=True)
class MatchEvent:
    """`event` came for run `run_id`, which waits at a WAIT_FOR_EVENT node."""

    run_id: UUID
    event: PatientEvent
    type: str = MATCH_TYPE


@dataclass(frozen=True)
class ExitRun:
    """`event` matched the `exit_on` of run `run_id`'s journey."""

    run_id: UUID
    event: PatientEvent
    type: str = EXIT_TYPE


EventInput = TriggerRun | MatchEvent | ExitRun
