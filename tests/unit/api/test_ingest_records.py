"""A record of another team's topic read into an event, or refused with a reason that names
headers and pointers, never values."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from journeys_api.ingest.records import PoisonError, read
from journeys_api.ingest.settings import TopicSource

CE = TopicSource(topic="clinic.events")
PLAIN = TopicSource.model_validate(
    {
        "topic": "crm.plain",
        "format": "json",
        "eventId": "/ref",
        "patientId": "/who",
        "typeConstant": "crm.contacted",
    }
)
PRODUCED_MS = 1_764_756_000_000
SECRET = "patient-secret-77"


def headers(**values: bytes | None) -> list[tuple[str, bytes | None]]:
    base: dict[str, bytes | None] = {"ce_specversion": b"1.0", "ce_id": b"e-1",
                                     "ce_type": b"appointment.booked"}  # fmt: skip
    return list({**base, **values}.items())


def refused(source: TopicSource, value: Any, meta: list[tuple[str, bytes | None]]) -> PoisonError:
    raw = value if isinstance(value, bytes) else orjson.dumps(value)
    with pytest.raises(PoisonError) as caught:
        read(source, raw, meta, PRODUCED_MS)
    assert SECRET not in caught.value.reason
    return caught.value


def test_binary_mode_without_a_time_happened_when_the_record_was_produced() -> None:
    event = read(CE, orjson.dumps({"patientId": SECRET}), headers(ce_subject=None), PRODUCED_MS)
    assert (event.event_id, event.patient_id, event.type) == ("e-1", SECRET, "appointment.booked")
    assert event.occurred_at == datetime.fromtimestamp(PRODUCED_MS / 1000, UTC)
    assert event.data == {"patientId": SECRET}


@pytest.mark.parametrize(
    ("source", "value", "meta", "stage", "reason"),
    [
        (CE, {"patientId": SECRET}, headers(ce_specversion=b"0.3"), "ingest.invalid",
         "specversion must be 1.0"),
        (CE, {"patientId": SECRET}, headers(**{"content-type": b"text/plain"}), "ingest.invalid",
         "header content-type must be a JSON media type"),
        (CE, {"patientId": SECRET}, headers(ce_type=b"Booked " + SECRET.encode()),
         "ingest.invalid", "type at header ce_type: String should match pattern"),
        (CE, {"specversion": "1.0", "id": "x", "type": "a.b", "data_base64": "AA=="}, [],
         "ingest.invalid", "data_base64 is not accepted"),
        (CE, {"patientId": SECRET}, [], "ingest.decode", "not a CloudEvent"),
        (CE, b"\xff" + SECRET.encode(), headers(), "ingest.decode", "the value is not JSON"),
        (CE, b"[" * 33 + b"]" * 33, headers(), "ingest.decode",
         "the value nests JSON deeper than 32"),
        (PLAIN, {"who": SECRET}, [], "ingest.invalid", "eventId at /ref: missing"),
        (PLAIN, {"ref": "r-1", "who": {"id": SECRET}}, [], "ingest.invalid", "patientId at /who"),
    ],
)  # fmt: skip
def test_a_record_that_cannot_be_an_event_says_why_by_name_only(
    source: TopicSource, value: Any, meta: list[tuple[str, bytes | None]], stage: str,
    reason: str,
) -> None:  # fmt: skip
    poison = refused(source, value, meta)
    assert poison.stage == stage
    assert poison.reason.startswith(reason) or reason in poison.reason
