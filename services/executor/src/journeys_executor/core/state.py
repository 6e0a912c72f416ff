"""A run's state, as folded from its events."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from journeys_contracts.definition import JourneyDefinition
from journeys_contracts.sealed import WrappedDataKey
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
    """Everything `decide` needs, the run's journey definition included.

    The definition is not part of the stored state (`exclude`): a journey is immutable, so its
    id names it, and the run table keeps each definition once and hands it back on load.

    A *sealed* run (started by a sealed command) also names its patient key and carries its
    patient's data key, wrapped: the core carries both along unread, and the adapters seal
    the run's patient data with that key wherever it leaves memory. Both are None for an
    unsealed run; the run table stores them itself (`exclude`), beside the sealed fields.
    """

    model_config = ConfigDict(frozen=True)

    run_id: UUID
    journey_id: UUID
    patient_id: str
    patient_context: dict[str, Any]
    definition: JourneyDefinition = Field(exclude=True)
    status: Status
    current_node_id: str | None
    seq: int
    pending_timer: PendingTimer | None = None
    pending_message: PendingMessage | None = None
    updated_at: UtcDatetime
    last_event: Annotated[UUID | None, Field(exclude_if=lambda v: v is None)] = None
    """The receipt id of the last patient event the run took (its trigger, or one a wait
    matched): a wait's look-back only sees the patient's events after it, so one event never
    satisfies two waits of a run."""
    patient_key: str | None = Field(None, exclude=True)
    data_key: WrappedDataKey | None = Field(None, exclude=True)

    @property
    def ended(self) -> bool:
        return self.status in TERMINAL
