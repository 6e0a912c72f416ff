"""The OpenAPI description of `POST /events`: its four body forms, each with an example, and
every answer it gives."""

from __future__ import annotations

from typing import Any

from journeys_api.events_body import CLOUDEVENT, CLOUDEVENTS_BATCH, JSON, MAX_EVENTS
from journeys_api.examples import error, json_example, response
from journeys_api.openapi import AUTH_ERRORS, TOO_LARGE, UNAVAILABLE

DESCRIPTION = f"""
One event, `{{"events": [...]}}` with up to {MAX_EVENTS:,}, or CloudEvents 1.0 in structured JSON
(`{CLOUDEVENT}` for one, `{CLOUDEVENTS_BATCH}` for an array), where `id` is the event id,
`subject` the patient id, `time` when it happened and `data` its data.

`eventId` is the sender's id of the event: the same `eventId` for the same patient has effect
once. Within a request, a repeat is sent once and counted in `duplicates`; across requests
(a retry, a re-upload, another way in) the engine de-duplicates, so sending a batch again
after a 503 or a timeout is safe. `occurredAt` defaults to when the API received the event.

202 once every accepted event is durable in Kafka. A batch is validated whole: one bad event
refuses it with 422, each error naming the event's index and field, and nothing of it is sent.
"""

_EVENT: dict[str, Any] = {
    "eventId": "ehr-7781", "patientId": "patient-123", "type": "appointment.booked",
    "occurredAt": "2026-12-03T10:00:00Z", "data": {"clinicId": "c-1", "appointmentId": "a-9"},
}  # fmt: skip
_SECOND: dict[str, Any] = {
    "eventId": "forms-118", "patientId": "patient-456", "type": "intake_form.submitted",
}  # fmt: skip
_CLOUDEVENT: dict[str, Any] = {
    "specversion": "1.0", "id": "ehr-7781", "source": "/ehr/scheduling",
    "type": "appointment.booked", "subject": "patient-123", "time": "2026-12-03T10:00:00Z",
    "datacontenttype": "application/json", "data": {"clinicId": "c-1", "appointmentId": "a-9"},
}  # fmt: skip


def openapi_body() -> dict[str, Any]:
    """The request body in each media type it may come as (FastAPI cannot tell from the
    handler, which reads the body itself)."""
    event_schema = {
        "type": "object", "additionalProperties": False,
        "required": ["eventId", "patientId", "type"],
        "properties": {
            "eventId": {"type": "string", "minLength": 1, "maxLength": 200},
            "patientId": {"anyOf": [{"type": "string", "minLength": 1, "maxLength": 255},
                                    {"type": "integer"}]},
            "type": {"type": "string", "pattern": "^[a-z0-9_.-]+$", "maxLength": 200},
            "occurredAt": {"type": "string", "format": "date-time"},
            "data": {"type": "object"},
        },
    }  # fmt: skip
    cloudevent = {
        "type": "object", "required": ["specversion", "id", "source", "type", "subject"],
        "properties": {
            "specversion": {"const": "1.0"}, "id": {"type": "string"},
            "source": {"type": "string"}, "type": {"type": "string", "pattern": "^[a-z0-9_.-]+$"},
            "subject": {"type": "string", "description": "the patient id"},
            "time": {"type": "string", "format": "date-time"},
            "datacontenttype": {"type": "string", "description": "a JSON media type"},
            "data": {"type": "object"},
        },
    }  # fmt: skip
    batch = {
        "type": "object", "additionalProperties": False, "required": ["events"],
        "properties": {"events": {"type": "array", "items": event_schema,
                                  "maxItems": MAX_EVENTS}},
    }  # fmt: skip
    return {
        "required": True,
        "content": {
            JSON: {
                "schema": {"oneOf": [event_schema, batch]},
                "examples": {
                    "one": json_example("One patient event", _EVENT),
                    "batch": json_example("A batch of events", {"events": [_EVENT, _SECOND]}),
                },
            },
            CLOUDEVENT: {
                "schema": cloudevent,
                "examples": {"cloudevent": json_example("One CloudEvent", _CLOUDEVENT)},
            },
            CLOUDEVENTS_BATCH: {
                "schema": {"type": "array", "items": cloudevent, "maxItems": MAX_EVENTS},
                "examples": {"cloudevents": json_example(
                    "A batch of CloudEvents",
                    [_CLOUDEVENT, {**_CLOUDEVENT, "id": "ehr-7782", "subject": "patient-456"}],
                )},
            },
        },
    }  # fmt: skip


RESPONSES: dict[int | str, dict[str, Any]] = {
    **AUTH_ERRORS,
    202: {"description": "Every accepted event is in Kafka; repeats within the request are "
                         "counted in `duplicates` and were sent once"},
    413: {
        **TOO_LARGE,
        "content": {"application/json": {"examples": {
            **TOO_LARGE["content"]["application/json"]["examples"],
            "too_many": json_example("too many events", {"detail": (
                f"a request carries at most {MAX_EVENTS} events; this one carries 1001: send "
                "them in several requests")}),
        }}},
    },
    415: response(
        "The body is not JSON or CloudEvents JSON",
        media=json_example("unsupported media type", {"detail": (
            f"Content-Type must be one of {JSON}, {CLOUDEVENT}, {CLOUDEVENTS_BATCH} (UTF-8)")}),
    ),
    422: response(
        "The body is not JSON, or events are malformed; each error names the event's index "
        "and field, and nothing of the batch was sent",
        missing=json_example("event without a patient", error(
            ["body", "events", 3, "patientId"], "Field required", "missing")),
        bad_type=json_example("event type with capitals", error(
            ["body", "type"], "String should match pattern '^[a-z0-9_.-]+$'",
            "string_pattern_mismatch")),
    ),
    503: UNAVAILABLE,
}  # fmt: skip
