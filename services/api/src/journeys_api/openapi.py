"""The OpenAPI document: named examples of every route's answers, nulls kept, and the journey
definition's components under the names clients were generated from."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel

from journeys_api.examples import (
    CREATED_AT,
    ERASURE_ID,
    ERASURE_VIEW,
    HIP_REPLACEMENT_JOURNEY,
    JOURNEY_ID,
    JOURNEY_VIEW,
    NAMED,
    PATIENT_CONTEXT,
    RUN_ID,
    RUN_VIEW,
    TIMELINE,
    error,
    json_example,
    response,
)
from journeys_contracts.definition import (
    Condition,
    ConditionalNode,
    DelayNode,
    EventMatch,
    JourneyDefinition,
    MessageNode,
    StrictCondition,
    StrictConditionalNode,
    StrictDelayNode,
    StrictEventMatch,
    StrictJourneyDefinition,
    StrictMessageNode,
    StrictWaitForEventNode,
    WaitForEventNode,
)

UNAVAILABLE = response(
    "Kafka or PostgreSQL is out of reach; retry after `Retry-After` seconds",
    headers={"Retry-After": {"description": "seconds to wait", "schema": {"type": "integer"}}},
    postgres=json_example("database down", {"detail": "postgres is unavailable, retry later"}),
    kafka=json_example("broker down", {"detail": "kafka is unavailable, retry later"}),
)

JOURNEY_EXAMPLES: dict[str, Any] = {
    "hip_replacement": json_example(
        "Welcome, branch on age, wait a day, check in", HIP_REPLACEMENT_JOURNEY
    ),
    "dangling": json_example(
        "Rejected (422): a next node that does not exist",
        {**HIP_REPLACEMENT_JOURNEY, "nodes": [
            {"id": "welcome", "type": "MESSAGE", "message": "Welcome!",
             "next_node_id": "nowhere"}]},
    ),
}  # fmt: skip

PATIENT_EXAMPLES: dict[str, Any] = {
    "patient": json_example("A patient context; `id` names the patient", PATIENT_CONTEXT),
    "numeric id": json_example("An integer id is taken as its decimal string", {"id": 4711}),
}

_NODE_LOC: list[str | int] = ["body", "nodes", 0, "next_node_id"]
VALIDATION: dict[str, dict[str, Any]] = {
    "journey": response(
        "The definition breaks a rule; each error names its field",
        dangling=json_example("dangling next node",
                              error(_NODE_LOC, "'nowhere' does not match any node id")),
        cycle=json_example("delay-free cycle", error(
            ["body", "nodes", 0, "id"],
            "cycle a -> b -> a can loop without passing a DELAY with duration_seconds > 0 "
            "or a WAIT_FOR_EVENT")),
        operator=json_example("unknown operator", error(
            ["body", "nodes", 1, "CONDITIONAL", "condition", "operator"],
            "Input should be '==', '!=', '>', '>=', '<', '<=', 'eq', 'ne', 'gt', 'gte', 'lt', "
            "'lte', 'in', 'not_in', 'exists' or 'contains'", "literal_error")),
    ),
    "trigger": response(
        "The patient context or a header is malformed",
        missing_id=json_example("no patient id", error(
            ["body", "id"], "Field required: the patient context needs an id", "missing")),
        reused_key=json_example("Idempotency-Key reused with another body", error(
            ["header", "idempotency-key"],
            "Idempotency-Key was already used by you for this journey with a different "
            "request body")),
    ),
    "cursor": response(
        "A query parameter is malformed",
        cursor=json_example("foreign cursor",
                            error(["query", "cursor"], "cursor is not one this API issued")),
    ),
    "search": response(
        "A field of the body is unknown or malformed",
        unknown=json_example("unknown field", error(["body", "patient"],
                                                    "Extra inputs are not permitted",
                                                    "extra_forbidden")),
        cursor=json_example("foreign cursor in the body",
                            error(["body", "cursor"], "cursor is not one this API issued")),
    ),
    "journeyId": response(
        "The journey id is not a UUID",
        journeyId=json_example("malformed journey id", error(
            ["path", "journeyId"], "Input should be a valid UUID, invalid character: expected "
            "an optional prefix of `urn:uuid:` followed by [0-9a-fA-F-], found `x` at 1",
            "uuid_parsing")),
    ),
    "erasure": response(
        "The patient id is missing, blank, too long or not storable, or the body has an "
        "unknown field",
        missing=json_example("erasure without a patient id", error(
            ["body", "patientId"], "Field required", "missing")),
        too_long=json_example("patient id too long", error(
            ["body", "patientId"], "String should have at most 255 characters",
            "string_too_long")),
    ),
    "conversation": response(
        "The patient id is missing, blank, too long or not storable, the limit is not 1 to "
        "500, or the body has an unknown field",
        no_patient=json_example("conversation without a patient id", error(
            ["body", "patientId"], "Field required", "missing")),
        big_limit=json_example("conversation limit too large", error(
            ["body", "limit"], "Input should be less than or equal to 500", "less_than_equal")),
    ),
    "consent": response(
        "No channel named, a channel we do not have, a value that is not a boolean, or an "
        "unknown field; or the patient id in the path is blank or too long",
        unknown=json_example("a channel we do not have", error(
            ["body", "channels", "fax", "[key]"],
            "Input should be 'sms', 'email', 'webhook' or 'console'", "literal_error")),
        empty=json_example("no channel named", error(
            ["body", "channels"], "Dictionary should have at least 1 item after validation",
            "too_short")),
    ),
    "patientId": response(
        "The patient id in the path is blank, too long or not storable",
        blank=json_example("blank patient id in the path", error(
            ["path", "patientId"], "must have 1 to 255 non-blank characters")),
    ),
    "eventId": response(
        "The event id in the path is longer than an event id can be",
        long=json_example("event id too long", error(
            ["path", "eventId"], "String should have at most 200 characters")),
    ),
    "messageId": response(
        "The message id is not a UUID",
        messageId=json_example("malformed message id", error(
            ["path", "messageId"], "Input should be a valid UUID, invalid length: expected "
            "length 32 for simple format, found 3", "uuid_parsing")),
    ),
    "erasureId": response(
        "The erasure id is not a UUID",
        erasureId=json_example("malformed erasure id", error(
            ["path", "erasureId"], "Input should be a valid UUID, invalid length: expected "
            "length 32 for simple format, found 3", "uuid_parsing")),
    ),
    "runId": response(
        "The run id is not a UUID",
        runId=json_example("malformed run id", error(
            ["path", "runId"], "Input should be a valid UUID, invalid length: expected length "
            "32 for simple format, found 3", "uuid_parsing")),
    ),
}  # fmt: skip

NOT_FOUND: dict[str, dict[str, Any]] = {
    kind: response(
        f"No {kind} has this id",
        unknown=json_example(f"unknown {kind}", {"detail": f"{kind} {ident} not found"}),
    )
    for kind, ident in (
        ("journey", JOURNEY_ID),
        ("run", RUN_ID),
        ("erasure", ERASURE_ID),
        ("event", "ehr-7781"),
        ("message", "9a3e4c1d-2b7f-5e6a-8d9c-0f1e2d3c4b5a"),
    )
}

TOO_LARGE = response(
    "The body exceeds `API_MAX_BODY_BYTES`, or a Kafka record this request makes (or the "
    "executor will make from it) would exceed the record size limit. Final: do not retry",
    too_large=json_example(
        "body too large", {"detail": "request body exceeds the limit of 1048576 bytes"}
    ),
    record_too_large=json_example(
        "record too large",
        {
            "detail": "the run state record would be 1049003 bytes, over the limit of 1048576 "
            "bytes per Kafka record"
        },
    ),
)

CONFLICT = response(
    "The run has already ended",
    ended=json_example("completed run", {
        "detail": f"Expected a run that has not ended, but run {RUN_ID} is completed"}),
)  # fmt: skip

NOT_GIVEN_UP = response(
    "The message was not given up, or was sent again already (once only)",
    sent=json_example("a message sent", {
        "detail": "Expected a message given up, but its last outcome is message.sent"}),
    retried=json_example("retried before", {
        "detail": "Expected a message not retried yet, but it was retried at "
                  "2025-03-01T09:30:01.402117+00:00"}),
)  # fmt: skip
RETRY_ACCEPTED = {
    "description": "The message is handed to the delivery service again, under the same "
    "message id (the provider's idempotency key) and the next attempt",
    "content": {"application/json": {"examples": {
        "requested": json_example("sent again", {
            "messageId": "9a3e4c1d-2b7f-5e6a-8d9c-0f1e2d3c4b5a", "attempt": 2,
            "status": "requested"}),
    }}},
}  # fmt: skip

ERASED_KEY = response(
    "The Idempotency-Key names a run whose patient data was erased: a retry would start it again",
    erased=json_example("erased", {
        "detail": "Expected an Idempotency-Key whose run can be answered, but the patient data "
        "of its run was erased: send a new request with a new Idempotency-Key"}),
)  # fmt: skip

CHALLENGE = {
    "WWW-Authenticate": {"description": "the challenge (RFC 6750)", "schema": {"type": "string"}}
}
UNAUTHORIZED = response(
    "No credentials, or ones that do not hold: a JWT from the configured issuer, or an API key",
    headers=CHALLENGE,
    missing=json_example("no credentials", {"detail": "credentials required"}),
    expired=json_example("expired token", {"detail": "token expired"}),
)
FORBIDDEN = response(
    "The credentials do not carry the scope this route needs",
    scope=json_example("missing scope", {"detail": "this route needs the scope runs:trigger"}),
)
TWO_CREDENTIALS = response(
    "Both a bearer token and an API key: one way per request (RFC 6750, `invalid_request`)",
    headers=CHALLENGE,
    both=json_example("two credentials", {"detail": "send one credential, not two"}),
)
AUTH_ERRORS: dict[int | str, dict[str, Any]] = {
    400: TWO_CREDENTIALS,
    401: UNAUTHORIZED,
    403: FORBIDDEN,
}

CANCEL_EXAMPLES: dict[str, Any] = {
    "reason": json_example("With a reason", {"reason": "patient opted out"}),
    "empty": json_example("Without a reason", {}),
}

CONSENT_EXAMPLES: dict[str, Any] = {
    "stop": json_example("The patient asked for no more SMS", {"channels": {"sms": False}}),
    "opt_in": json_example(
        "Email and SMS allowed again", {"channels": {"email": True, "sms": True}}
    ),
}
CONSENT_ACCEPTED = {
    "description": "The change is in Kafka, in order with the patient's other commands; every "
    "message decided after it is checked against it",
    "content": {"application/json": {"examples": {
        "revoked": json_example("SMS revoked", {"consentId": ERASURE_ID,
                                                "channels": {"sms": False}}),
    }}},
}  # fmt: skip
ERASURE_EXAMPLES: dict[str, Any] = {
    "patient": json_example("Erase one patient", {"patientId": "patient-123"}),
}
ERASURE_ACCEPTED = {
    "description": "The erasure is recorded and its command is in Kafka; a repeat while it is "
    "pending answers the same erasure",
    "headers": {"Location": {"description": "the erasure's URL, to follow it",
                             "schema": {"type": "string"}}},
    "content": {"application/json": {"examples": {
        "pending": json_example("erasure accepted", {"erasureId": ERASURE_ID,
                                                     "status": "pending"}),
    }}},
}  # fmt: skip
ERASURE_STATES: dict[str, Any] = {
    "content": {"application/json": {"examples": {
        "pending": json_example("erasure pending", {
            "erasureId": ERASURE_ID, "status": "pending", "requestedAt": CREATED_AT,
            "doneAt": None}),
        "done": json_example("erasure done", ERASURE_VIEW),
    }}},
}  # fmt: skip

SEARCH_EXAMPLES: dict[str, Any] = {
    "patient": json_example("A patient's runs", {"patientId": "patient-123"}),
    "filtered": json_example(
        "A patient's waiting runs of one journey, 20 a page",
        {
            "patientId": "patient-123",
            "journeyId": "3f0c6d7e-2b1a-4c5d-9e8f-0a1b2c3d4e5f",
            "status": "waiting_delay",
            "limit": 20,
        },
    ),
}

_SCHEMA_EXAMPLES = {
    "JourneyView": [JOURNEY_VIEW], "RunView": [RUN_VIEW], "RunTimeline": [TIMELINE],
    "ErasureView": [ERASURE_VIEW],
}  # fmt: skip


# The API validates journey bodies with strict twins of the contracts' models: the same shape,
# closed to unknown fields. Clients were generated from the published names, so the twins take
# them. The tolerant models' components (the journey view's nodes) give way: a response never
# carries a field its model does not declare, so the closed shapes describe it exactly.
_PUBLISHED_NAMES: dict[type[BaseModel], type[BaseModel]] = {
    StrictJourneyDefinition: JourneyDefinition,
    StrictMessageNode: MessageNode,
    StrictDelayNode: DelayNode,
    StrictConditionalNode: ConditionalNode,
    StrictCondition: Condition,
    StrictWaitForEventNode: WaitForEventNode,
    StrictEventMatch: EventMatch,
}


def finish_document(app: FastAPI) -> None:
    """Finish FastAPI's document once, when it is first generated: null examples restored, the
    journey definition's components under their published names."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        fresh = app.openapi_schema is None
        document = generate()
        if fresh:
            # FastAPI drops every null from the document, examples included: without this the
            # hip replacement example would lose `"on_false_next_node_id": null`, the very way
            # a branch ends a run.
            _restore(document)
            _publish_strict_twins(document)
            schemas = document.get("components", {}).get("schemas", {})
            for name, examples in _SCHEMA_EXAMPLES.items():
                if name in schemas:
                    schemas[name]["examples"] = examples
        return document

    app.openapi = openapi  # type: ignore[method-assign]


def _restore(node: Any) -> None:
    """Replace every named example's value by the original, found by its unique summary."""
    if isinstance(node, dict):
        summary = node.get("summary")
        if "value" in node and isinstance(summary, str) and summary in NAMED:
            node["value"] = NAMED[summary]
            return
        for child in node.values():
            _restore(child)
    elif isinstance(node, list):
        for child in node:
            _restore(child)


def _publish_strict_twins(document: dict[str, Any]) -> None:
    """Rename each strict twin's component to its tolerant model's name, references included."""
    schemas: dict[str, Any] = document.get("components", {}).get("schemas", {})
    refs: dict[str, str] = {}
    for strict, tolerant in _PUBLISHED_NAMES.items():
        if strict.__name__ in schemas:
            schemas[tolerant.__name__] = schemas.pop(strict.__name__)
            refs[_ref(strict)] = _ref(tolerant)
    _rewrite(document, refs)
    if schemas:
        document["components"]["schemas"] = dict(sorted(schemas.items()))


def _ref(model: type[BaseModel]) -> str:
    return f"#/components/schemas/{model.__name__}"


def _rewrite(node: Any, refs: dict[str, str]) -> None:
    """Replace every reference in `refs`: `$ref` values and discriminator mappings alike."""
    if isinstance(node, dict):
        for key, child in node.items():
            if isinstance(child, str) and child in refs:
                node[key] = refs[child]
            else:
                _rewrite(child, refs)
    elif isinstance(node, list):
        for child in node:
            _rewrite(child, refs)
