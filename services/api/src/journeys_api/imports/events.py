"""An accepted row of a clinic's CSV as the patient event it becomes.

The event's type is the row's `event_type` in lower case (`APPOINTMENT_BOOKED` becomes
`appointment_booked`: event types are lower case everywhere, and journeys trigger and wait on
that name). Its id is the row's `event_id`, so importing a row again, from this file or
another way in, has effect once (the executor keys it by patient and id). Its data is the
row's other cells by column name, `clinic_id` included, empty ones left out, the revenue as
the exact decimal text the file gave.
"""

from __future__ import annotations

from journeys_api.events_body import InboundEvent
from journeys_api.imports.rows import ClinicEvent


def event_type_of(clinic_type: str) -> str:
    return clinic_type.lower()


def inbound(event: ClinicEvent) -> InboundEvent:
    return InboundEvent(
        event_id=event.event_id, patient_id=event.patient_id,
        type=event_type_of(event.event_type), occurred_at=event.occurred_at,
        data={"clinic_id": event.clinic_id, **event.data},
    )  # fmt: skip
