"""A run's state, as folded from its events."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict

from journeys_contracts.definition import JourneyDefinition
from journeys_contracts.statuses import TERMINAL
from journeys_contracts.statuses import StartedStatus as Status
from journeys_contracts.wire import UtcDatetime


class PendingTimer(BaseModel):
    model_config = ConfigDict(frozen=True)

    timer_id: UUID
    node_id: str
    due_at: UtcDatetime


class PendingMessage(BaseModel):
    model_config = ConfigDict(frozen=True)

    message_id: UUID
    node_id: str
    message: str


class RunState(BaseModel):
    """Everything `decide` needs: the definition snapshot travels with the run."""

    model_config = ConfigDict(frozen=True)

    run_id: UUID
    journey_id: UUID
    patient_id: str
    patient_context: dict[str, Any]
    definition: JourneyDefinition
    status: Status
    current_node_id: str | None
    seq: int
    pending_timer: PendingTimer | None = None
    pending_message: PendingMessage | None = None
    updated_at: UtcDatetime

    @property
    def ended(self) -> bool:
        return self.status in TERMINAL
