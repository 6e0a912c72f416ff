"""Example payloads for the OpenAPI document, built around one hip replacement journey."""

from __future__ import annotations

from typing import Any

JOURNEY_ID = "3f0c6d7e-2b1a-4c5d-9e8f-0a1b2c3d4e5f"
RUN_ID = "9b2e4f60-7c1d-5e3a-8b4c-1d2e3f405162"
CREATED_AT = "2025-03-01T09:30:00.123456Z"
HIP_REPLACEMENT_JOURNEY: dict[str, Any] = {
    "name": "Hip replacement recovery",
    "start_node_id": "welcome",
    "nodes": [
        {"id": "welcome", "type": "MESSAGE", "message": "Welcome!", "next_node_id": "age_check"},
        {"id": "age_check", "type": "CONDITIONAL",
         "condition": {"field": "age", "operator": ">", "value": 65},
         "on_true_next_node_id": "wait", "on_false_next_node_id": None},
        {"id": "wait", "type": "DELAY", "duration_seconds": 86400, "next_node_id": "checkin"},
        {"id": "checkin", "type": "MESSAGE", "message": "How is your recovery going?",
         "next_node_id": None},
    ],
}  # fmt: skip
PATIENT_CONTEXT: dict[str, Any] = {
    "id": "patient-123", "age": 72, "language": "en", "condition": "hip_replacement",
}  # fmt: skip

JOURNEY_VIEW: dict[str, Any] = {
    "journeyId": JOURNEY_ID,
    **HIP_REPLACEMENT_JOURNEY,
    "createdAt": CREATED_AT,
}

RUN_VIEW: dict[str, Any] = {
    "runId": RUN_ID,
    "journeyId": JOURNEY_ID,
    "patientId": "patient-123",
    "status": "waiting_delay",
    "currentNodeId": "wait",
    "patientContext": PATIENT_CONTEXT,
    "createdAt": CREATED_AT,
    "updatedAt": "2025-03-01T09:30:00.456789Z",
    "wakeAt": "2025-03-02T09:30:00.456789Z",
    "error": None,
}

TIMELINE: dict[str, Any] = {
    "runId": RUN_ID,
    "events": [
        {"seq": 1, "type": "journeys.run.started.v1", "occurredAt": CREATED_AT,
         "data": {"runId": RUN_ID, "seq": 1, "startNodeId": "welcome"}},
        {"seq": 2, "type": "journeys.node.entered.v1", "occurredAt": CREATED_AT,
         "data": {"runId": RUN_ID, "seq": 2, "nodeId": "welcome", "nodeType": "MESSAGE"}},
    ],
}  # fmt: skip

ERASURE_ID = "5d1c2b3a-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
ERASURE_VIEW: dict[str, Any] = {
    "erasureId": ERASURE_ID, "status": "done", "requestedAt": CREATED_AT,
    "doneAt": "2025-03-01T09:30:01.402117Z",
}  # fmt: skip
FAILED_MESSAGE: dict[str, Any] = {
    "messageId": "9a3e4c1d-2b7f-5e6a-8d9c-0f1e2d3c4b5a", "runId": RUN_ID,
    "journeyId": JOURNEY_ID, "nodeId": "welcome", "channel": "sms", "status": "failed",
    "reason": "sms gateway answered 400", "attempts": 1,
    "failedAt": "2025-03-01T09:30:01.402117Z",
}  # fmt: skip

CONVERSATION: dict[str, Any] = {"more": False, "messages": [
    {"direction": "out", "at": CREATED_AT, "channel": "sms",
     "text": "Your appointment is tomorrow at 10:00. Reply C to confirm.", "status": "sent",
     "reason": None, "keyword": None, "messageId": FAILED_MESSAGE["messageId"], "runId": RUN_ID,
     "journeyId": JOURNEY_ID, "nodeId": "remind", "eventId": None},
    {"direction": "in", "at": "2025-03-01T09:41:12Z", "channel": "sms", "text": "C",
     "status": None, "reason": None, "keyword": None, "messageId": None, "runId": None,
     "journeyId": None, "nodeId": None, "eventId": "sms:SM0123456789abcdef0123456789abcdef"},
]}  # fmt: skip


def error(loc: list[str | int], msg: str, error_type: str = "value_error") -> dict[str, Any]:
    return {"detail": [{"type": error_type, "loc": loc, "msg": msg}]}


NAMED: dict[str, Any] = {}


def json_example(summary: str, value: Any) -> dict[str, Any]:
    """A named example; summaries are unique, the document's nulls are restored by them."""
    if NAMED.setdefault(summary, value) is not value:
        raise ValueError(f"two examples are summarised {summary!r}")
    return {"summary": summary, "value": value}


def response(
    description: str, *, headers: dict[str, Any] | None = None, **named: dict[str, Any]
) -> dict[str, Any]:
    """A `responses=` entry whose JSON body has the given named examples, and its headers."""
    entry: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"examples": named}},
    }
    if headers:
        entry["headers"] = headers
    return entry
