"""A run's state, as folded from its events."""

from __future__ import annotations

from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict

from journeys_contracts.definition import JourneyDefinition
from journeys_contracts.wire import UtcDatetime

Status = Literal["in_progress", "waiting_delay", "completed", "failed", "cancelled"]
TERMINAL: frozenset[str] = frozenset({"completed", "failed", "cancelled"})


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
