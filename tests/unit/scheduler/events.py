"""Event records as the executor writes them, for the scheduler's tests."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from journeys_contracts.envelope import CloudEvent, event_id
from journeys_contracts.events import (
    DelayElapsed,
    DelayStarted,
    EventBase,
    EventMatched,
    EventTimedOut,
    EventWaiting,
    MessageRetrying,
    NodeEntered,
    PatientErased,
    RunCancelled,
    RunCompleted,
    erasure_event_id,
    type_of,
)

KEY = b"ab" * 32
JOURNEY = uuid.UUID("00000000-0000-0000-0000-00000000000a")


def _common(run_id: uuid.UUID, seq: int) -> dict[str, Any]:
    return {"run_id": run_id, "journey_id": JOURNEY, "patient_id": "patient-1", "seq": seq,
            "occurred_at": datetime.now(UTC)}  # fmt: skip


def delay_started(run_id: uuid.UUID, due_at: datetime, seq: int = 3) -> DelayStarted:
    timer_id = uuid.uuid5(run_id, f"timer:{seq}")
    return DelayStarted(**_common(run_id, seq), node_id="wait", timer_id=timer_id,
                        duration_seconds=1.0, due_at=due_at)  # fmt: skip


def delay_elapsed(started: DelayStarted) -> DelayElapsed:
    return DelayElapsed(**_common(started.run_id, started.seq + 1), node_id=started.node_id,
                        timer_id=started.timer_id, due_at=started.due_at,
                        fired_at=started.due_at + timedelta(milliseconds=1))  # fmt: skip


def event_waiting(run_id: uuid.UUID, due_at: datetime, seq: int = 3) -> EventWaiting:
    timer_id = uuid.uuid5(run_id, f"timer:{seq}")
    return EventWaiting(**_common(run_id, seq), node_id="form", event_type="intake_form.submitted",
                        timer_id=timer_id, timeout_seconds=1.0, due_at=due_at)  # fmt: skip


def message_retrying(run_id: uuid.UUID, due_at: datetime, seq: int = 4) -> MessageRetrying:
    timer_id = uuid.uuid5(run_id, f"timer:{seq}")
    return MessageRetrying(**_common(run_id, seq), node_id="hello", message_id=uuid.uuid4(),
                           channel="webhook", attempt=1, reason="gateway answered 503",
                           timer_id=timer_id, due_at=due_at)  # fmt: skip


def event_matched(waiting: EventWaiting, *, lookback: bool = False) -> EventMatched:
    """The event the run waited for came: its timer is cancelled (none on a look-back match)."""
    return EventMatched(**_common(waiting.run_id, waiting.seq + 1), node_id=waiting.node_id,
                        event_id="form-1", event_type=waiting.event_type,
                        receipt_id=uuid.uuid5(waiting.run_id, "receipt"),
                        event_occurred_at=datetime.now(UTC), event_data={"score": 7},
                        lookback=lookback,
                        cancelled_timer_id=None if lookback else waiting.timer_id)  # fmt: skip


def event_timed_out(waiting: EventWaiting) -> EventTimedOut:
    return EventTimedOut(**_common(waiting.run_id, waiting.seq + 1), node_id=waiting.node_id,
                         timer_id=waiting.timer_id, due_at=waiting.due_at,
                         fired_at=waiting.due_at + timedelta(milliseconds=1))  # fmt: skip


def run_cancelled(started: DelayStarted, with_timer: bool = True) -> RunCancelled:
    timer_id = started.timer_id if with_timer else None
    return RunCancelled(**_common(started.run_id, started.seq + 1), node_id=started.node_id,
                        cancelled_timer_id=timer_id)  # fmt: skip


def run_completed(run_id: uuid.UUID, seq: int) -> RunCompleted:
    return RunCompleted(**_common(run_id, seq), last_node_id="end")


def node_entered(run_id: uuid.UUID, seq: int = 2) -> NodeEntered:
    return NodeEntered(**_common(run_id, seq), node_id="n0", node_type="MESSAGE")


def headers(event: EventBase) -> list[tuple[str, bytes]]:
    return CloudEvent(id=event_id(event.run_id, event.seq), type=type_of(type(event)),
                      source="/journeys/executor", subject=str(event.run_id),
                      time=event.occurred_at).headers()  # fmt: skip


def patient_erased(*run_ids: uuid.UUID) -> PatientErased:
    return PatientErased(erasure_id=uuid.uuid4(), patient_key=KEY.decode(),
                         erased_at=datetime.now(UTC), run_ids=list(run_ids))  # fmt: skip


def erased_headers(erased: PatientErased) -> list[tuple[str, bytes]]:
    return CloudEvent(id=erasure_event_id(erased.erasure_id), type=type_of(PatientErased),
                      source="/journeys/executor", subject=str(erased.erasure_id),
                      time=erased.erased_at).headers()  # fmt: skip
