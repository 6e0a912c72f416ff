"""Event ids are uuid5(run id, "event:<seq>"): the fast path must give the very same ids."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from journeys_contracts.envelope import CloudEvent, event_id


@given(st.uuids(), st.integers(min_value=1, max_value=10**12))
def test_event_id_is_the_uuid5_of_the_run_and_seq(run_id: uuid.UUID, seq: int) -> None:
    expected = str(uuid.uuid5(run_id, f"event:{seq}"))

    assert event_id(run_id, seq) == expected
    assert event_id(str(run_id), seq) == expected


def test_headers_carry_every_cloudevents_attribute() -> None:
    at = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    headers = dict(CloudEvent("id-1", "journeys.run.started.v1", "/x", "run-1", at).headers())

    assert headers == {
        "ce_specversion": b"1.0",
        "ce_id": b"id-1",
        "ce_type": b"journeys.run.started.v1",
        "ce_source": b"/x",
        "ce_subject": b"run-1",
        "ce_time": b"2026-11-23T12:00:00+00:00",
        "content-type": b"application/json",
    }
