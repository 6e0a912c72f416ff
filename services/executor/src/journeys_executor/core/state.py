"""A run's state, as folded from its events."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from journeys_contracts.definition import ChannelName, JourneyDefinition
from journeys_contracts.sealed import WrappedDataKey
from journeys_contracts.statuses import TERMINAL
from journeys_contracts.statuses import StartedStatus as Status
from journeys_contracts.wire import UtcDatetime

MAX_TAKEN_EVENTS = 1000
"""Most receipt ids a run remembers taking: as many as the executor may keep per patient
(`EXECUTOR_EVENTS_KEPT_MAX` is at most 1000), so a look-back never meets one it forgot."""


class PendingTimer(BaseModel):
    model_config = ConfigDict(frozen=True)

    timer_id: UUID
    node_id: str
    due_at: UtcDatetime


class PendingMessage(BaseModel):
    """A message asked for and not yet sent or given up: `attempt` is the send in flight (or,
    while the run's `pending_timer` is set, the one that failed and waits to be retried; 0 for
    a message deferred by quiet hours, not sent yet)."""

    model_config = ConfigDict(frozen=True)

    message_id: UUID
    node_id: str
    message: str
    channel: Annotated[ChannelName | None, Field(exclude_if=lambda v: v is None)] = None
    attempt: Annotated[int, Field(exclude_if=lambda v: v == 1)] = 1


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
    taken_events: Annotated[tuple[UUID, ...], Field(exclude_if=lambda v: not v)] = ()
    """The receipt ids of the patient events the run took (its trigger, and those its waits
    matched; the last `MAX_TAKEN_EVENTS`): a wait's look-back passes over them, so one event
    never satisfies two waits of a run, nor the wait of the run it started."""
    patient_key: str | None = Field(None, exclude=True)
    data_key: WrappedDataKey | None = Field(None, exclude=True)

    @property
    def ended(self) -> bool:
        return self.status in TERMINAL
