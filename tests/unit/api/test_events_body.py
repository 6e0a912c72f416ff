"""Reading `POST /events` bodies: the four forms, and refusals that name each bad event's index
and field without echoing what was sent."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import pytest
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException

from journeys_api.errors import TooLargeError
from journeys_api.events_body import (
    CLOUDEVENT,
    CLOUDEVENTS_BATCH,
    JSON,
    MAX_EVENTS,
    InboundEvent,
    parse,
)
from tests.unit.api.conftest import offline_app

SECRET_PATIENT = "patient-secret-4242"


def event(event_id: str = "ehr-1", **fields: Any) -> dict[str, Any]:
    return {"eventId": event_id, "patientId": SECRET_PATIENT, "type": "appointment.booked",
            **fields}  # fmt: skip


def cloudevent(event_id: str = "ce-1", **fields: Any) -> dict[str, Any]:
    return {"specversion": "1.0", "id": event_id, "source": "/ehr", "subject": SECRET_PATIENT,
            "type": "appointment.booked", **fields}  # fmt: skip


def read(body: Any, content_type: str = JSON) -> list[InboundEvent]:
    return parse(content_type, orjson.dumps(body))


def errors(body: Any, content_type: str = JSON) -> list[tuple[list[str | int], str]]:
    with pytest.raises(RequestValidationError) as caught:
        read(body, content_type)
    found = caught.value.errors()
    assert SECRET_PATIENT not in repr(found)
    return [(list(e["loc"]), e["type"]) for e in found]


def test_one_event_is_read_with_its_time_in_utc() -> None:
    [read_event] = read(event(occurredAt="2026-12-03T11:00:00+01:00", data={"clinicId": "c-1"}))

    assert read_event == InboundEvent(
        "ehr-1", SECRET_PATIENT, "appointment.booked",
        datetime(2026, 12, 3, 10, tzinfo=UTC), {"clinicId": "c-1"},
    )  # fmt: skip


def test_an_event_without_time_or_data_takes_receipt_time_and_no_data() -> None:
    [read_event] = read(event(data=None))

    assert (read_event.occurred_at, read_event.data) == (None, {})


def test_an_integer_patient_id_is_read_as_its_decimal_string() -> None:
    assert [e.patient_id for e in read(event(patientId=4711))] == ["4711"]


def test_a_batch_is_read_in_order() -> None:
    assert [e.event_id for e in read({"events": [event("a"), event("b")]})] == ["a", "b"]


def test_an_empty_batch_has_no_events() -> None:
    assert read({"events": []}) == []
    assert read([], CLOUDEVENTS_BATCH) == []


def test_a_cloudevent_maps_id_subject_type_time_and_data() -> None:
    body = cloudevent(time="2026-12-03T10:00:00Z", data={"n": 1}, traceparent="00-abc",
                      datacontenttype="application/json; charset=utf-8")  # fmt: skip

    assert read(body, CLOUDEVENT) == [InboundEvent(
        "ce-1", SECRET_PATIENT, "appointment.booked", datetime(2026, 12, 3, 10, tzinfo=UTC),
        {"n": 1},
    )]  # fmt: skip


def test_a_cloudevents_batch_is_an_array() -> None:
    events = read([cloudevent("a"), cloudevent("b", subject=7)], CLOUDEVENTS_BATCH)

    assert [(e.event_id, e.patient_id) for e in events] == [("a", SECRET_PATIENT), ("b", "7")]


def test_each_bad_event_of_a_batch_is_named_by_index_and_field() -> None:
    batch = [event("ok"), event("bad", type="Appointment Booked"), "not an object",
             {"eventId": "x", "type": "a"}, event("", occurredAt="yesterday"),
             event("naive", occurredAt="2026-12-03T10:00:00"), event("extra", patient="p"),
             event("nul", data={"note": "a\x00b"}), event("bool", patientId=True)]  # fmt: skip

    assert errors({"events": batch}) == [
        (["body", "events", 1, "type"], "string_pattern_mismatch"),
        (["body", "events", 2], "model_type"),
        (["body", "events", 3, "patientId"], "missing"),
        (["body", "events", 4, "eventId"], "string_too_short"),
        (["body", "events", 4, "occurredAt"], "datetime_parsing"),
        (["body", "events", 5, "occurredAt"], "timezone_aware"),
        (["body", "events", 6, "patient"], "extra_forbidden"),
        (["body", "events", 7, "data", "note"], "value_error"),
        (["body", "events", 8, "patientId"], "value_error"),
    ]


def test_a_bad_cloudevent_is_named_by_attribute() -> None:
    bad = [cloudevent("a", specversion="0.3"), cloudevent("b", subject=" "),
           cloudevent("c", datacontenttype="text/plain"), cloudevent("d", data_base64="AA=="),
           cloudevent("e", patientId="p"), cloudevent("f", data=[1])]  # fmt: skip

    assert errors(bad, CLOUDEVENTS_BATCH) == [
        (["body", 0, "specversion"], "literal_error"),
        (["body", 1, "subject"], "value_error"),
        (["body", 2, "datacontenttype"], "value_error"),
        (["body", 3, "data_base64"], "value_error"),
        (["body", 4, "patientId"], "value_error"),
        (["body", 5, "data"], "dict_type"),
    ]
    assert errors({k: v for k, v in cloudevent().items() if k != "source"}, CLOUDEVENT) == [
        (["body", "source"], "missing")
    ]


def test_malformed_json_and_wrong_shapes_are_422_at_the_body() -> None:
    with pytest.raises(RequestValidationError) as caught:
        parse(JSON, b'{"eventId": ')
    assert [e["type"] for e in caught.value.errors()] == ["json_invalid"]
    assert errors({"events": {}}) == [(["body", "events"], "list_type")]
    assert errors({"events": [], "source": "x"}) == [(["body", "source"], "extra_forbidden")]
    assert errors(event(), CLOUDEVENTS_BATCH) == [(["body"], "list_type")]
    assert errors([event()]) == [(["body"], "model_type")]


def test_more_than_the_limit_of_events_is_too_large_before_any_is_read() -> None:
    with pytest.raises(TooLargeError, match=f"at most {MAX_EVENTS} events; this one carries"):
        read({"events": [None] * (MAX_EVENTS + 1)})
    with pytest.raises(TooLargeError):
        read([None] * (MAX_EVENTS + 1), CLOUDEVENTS_BATCH)
    assert len(read({"events": [event(f"e{i}") for i in range(MAX_EVENTS)]})) == MAX_EVENTS


@pytest.mark.parametrize(
    "content_type", [None, "", "text/plain", "application/xml", "application/json; charset=latin-1"]
)
def test_other_media_types_are_415(content_type: str | None) -> None:
    with pytest.raises(HTTPException) as caught:
        parse(content_type, orjson.dumps(event()))
    assert caught.value.status_code == 415


UTF8_FORMS = ["Application/JSON", "application/json; charset=UTF-8",
              'application/cloudevents+json; charset="utf-8"']  # fmt: skip


@pytest.mark.parametrize("content_type", UTF8_FORMS)
def test_media_types_are_matched_without_case_and_with_a_utf8_charset(content_type: str) -> None:
    body = cloudevent() if "cloudevents" in content_type else event()
    assert len(parse(content_type, orjson.dumps(body))) == 1


async def test_a_request_without_credentials_is_401_before_its_body_is_read(
    client: httpx.AsyncClient,
) -> None:
    """Not a 413 for a body over the limit: a caller without credentials learns nothing of
    how bodies are read."""
    too_large = b"x" * (offline_app().state.resources.settings.max_body_bytes + 1)

    response = await client.post("/events", content=too_large, headers={"X-API-Key": ""})

    assert response.status_code == 401


def test_the_openapi_document_shows_each_body_form_and_every_answer() -> None:
    operation = offline_app().openapi()["paths"]["/events"]["post"]

    content = operation["requestBody"]["content"]
    assert set(content) == {JSON, CLOUDEVENT, CLOUDEVENTS_BATCH}
    assert all(media["examples"] for media in content.values())
    assert {"202", "401", "403", "413", "415", "422", "503"} <= set(operation["responses"])
    assert operation["x-audit-action"] == "events.record"
    assert "de-duplicates" in operation["description"]
