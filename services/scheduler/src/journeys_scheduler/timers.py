"""A pending timer: the value the consumer stores, the window holds and the firer fires."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID


@dataclass(frozen=True, slots=True)
class Timer:
    """`partition` is the events partition its DelayStarted or EventWaiting came from (and
    the commands partition its FireTimer goes to); `patient_key` is that record's Kafka key."""

    timer_id: UUID
    run_id: UUID
    patient_key: str
    partition: int
    due_at: datetime


Key = tuple[datetime, UUID]  # timers are read from PostgreSQL in (due_at, timer_id) order
