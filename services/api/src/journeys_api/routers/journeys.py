"""`/journeys`: define a journey, read journeys, trigger a run for a patient."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from functools import partial
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Body, Header, Path, Query, Response

from journeys_api import bodies, idempotency, record_size
from journeys_api.audit import AuditedRoute, audited, touched
from journeys_api.auth import Principal, Scope, require
from journeys_api.data_keys import Check
from journeys_api.deps import ResourcesDep
from journeys_api.errors import not_found
from journeys_api.openapi import (
    AUTH_ERRORS,
    ERASED_KEY,
    JOURNEY_EXAMPLES,
    NOT_FOUND,
    PATIENT_EXAMPLES,
    TOO_LARGE,
    UNAVAILABLE,
    VALIDATION,
)
from journeys_api.pagination import DEFAULT_LIMIT, MAX_LIMIT, Key, decode_cursor, next_cursor
from journeys_api.read_models import Row
from journeys_api.resources import Resources
from journeys_api.views import JourneyCreated, JourneyPage, JourneyView, RunAccepted
from journeys_contracts.audit import AuditAction
from journeys_contracts.commands import StartRun
from journeys_contracts.definition import JourneyDefinition, StrictJourneyDefinition
from journeys_contracts.journeys import JourneyDefined
from journeys_runtime.sealing import seal_start_run

router = APIRouter(prefix="/journeys", tags=["journeys"], route_class=AuditedRoute)

JourneyIdPath = Annotated[UUID, Path(alias="journeyId", description="the journey's id")]
IdempotencyKey = Annotated[
    str | None,
    Header(
        min_length=1, max_length=255,
        description="retrying with the same key and body returns the same runId; keys are "
        "scoped to the caller (the authenticated subject) and the journey",
    ),
]  # fmt: skip


@router.post(
    "",
    status_code=201,
    summary="Define a journey",
    dependencies=[require(Scope.JOURNEYS_WRITE)],
    responses={
        **AUTH_ERRORS,
        201: {"headers": {"Location": {"description": "the journey's URL"}}},
        413: TOO_LARGE,
        422: VALIDATION["journey"],
        503: UNAVAILABLE,
    },
    openapi_extra=audited(AuditAction.JOURNEY_CREATE),
)
async def create_journey(
    definition: Annotated[StrictJourneyDefinition, Body(openapi_examples=JOURNEY_EXAMPLES)],
    resources: ResourcesDep,
    response: Response,
) -> JourneyCreated:
    """Validate the graph, publish it on the definitions topic, answer once it is readable."""
    bodies.require_sound_graph(definition, resources.settings.max_lookback_seconds)
    journey_id = uuid.uuid4()
    touched(journey_id=journey_id)
    record = JourneyDefined(
        journey_id=journey_id, definition=definition, created_at=datetime.now(UTC)
    )
    record_size.require_fits({"journey definition record": len(record.to_json())})
    smallest = record_size.SMALLEST_CONTEXT
    record_size.require_fits(
        _run_record_sizes(resources, journey_id, smallest["id"], smallest, definition),
        "no run of this journey could fit, even with the smallest patient context: ",
    )
    await resources.publish(
        resources.topics.definitions, str(journey_id), record,
        subject=journey_id, event_id=str(uuid.uuid5(journey_id, "journey.defined")),
    )  # fmt: skip
    resources.journeys.remember(journey_id, definition)
    response.headers["Location"] = f"/journeys/{journey_id}"
    return JourneyCreated(journey_id=journey_id)


@router.get(
    "",
    summary="List journeys, oldest first",
    dependencies=[require(Scope.JOURNEYS_READ)],
    responses={**AUTH_ERRORS, 422: VALIDATION["cursor"], 503: UNAVAILABLE},
    openapi_extra=audited(AuditAction.JOURNEY_LIST),
)
async def list_journeys(
    resources: ResourcesDep,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    cursor: Annotated[str | None, Query(description="`nextCursor` of the previous page")] = None,
) -> JourneyPage:
    after = decode_cursor(cursor)
    rows = await resources.read_models.journeys(after, limit + 1)
    keys = [Key(row["created_at"], row["journey_id"]) for row in rows]
    items = [_view(row) for row in rows[:limit]]
    return JourneyPage(items=items, next_cursor=next_cursor(keys, limit))


@router.get(
    "/{journeyId}",
    summary="Read a journey as it was defined",
    dependencies=[require(Scope.JOURNEYS_READ)],
    responses={
        **AUTH_ERRORS,
        404: NOT_FOUND["journey"],
        422: VALIDATION["journeyId"],
        503: UNAVAILABLE,
    },
    openapi_extra=audited(AuditAction.JOURNEY_READ),
)
async def get_journey(journey_id: JourneyIdPath, resources: ResourcesDep) -> JourneyView:
    row = await resources.read_models.journey(journey_id)
    if row is None:
        raise not_found("journey", journey_id)
    return _view(row)


@router.post(
    "/{journeyId}/trigger",
    status_code=202,
    summary="Start a run of the journey for one patient",
    responses={
        **AUTH_ERRORS,
        202: {"headers": {"Location": {"description": "the run's URL"}}},
        404: NOT_FOUND["journey"],
        409: ERASED_KEY,
        413: TOO_LARGE,
        422: VALIDATION["trigger"],
        503: UNAVAILABLE,
    },
    openapi_extra=audited(AuditAction.RUN_TRIGGER),
)
async def trigger(
    journey_id: JourneyIdPath,
    context: Annotated[
        dict[str, Any],
        Body(description="the patient context; `id` names the patient",
             openapi_examples=PATIENT_EXAMPLES, json_schema_extra=bodies.CONTEXT_SCHEMA),
    ],
    resources: ResourcesDep,
    response: Response,
    caller: Annotated[Principal, require(Scope.RUNS_TRIGGER)],
    idempotency_key: IdempotencyKey = None,
) -> RunAccepted:  # fmt: skip
    """Accepted means durable: the StartRun command is in Kafka when this answers 202."""
    patient_id = bodies.patient_id_of(context)
    patient_key = resources.patient_key(patient_id)
    touched(patient_key=patient_key)
    bodies.require_storable(context, ("body",))
    definition = await resources.journeys.get(journey_id)
    if definition is None:
        raise not_found("journey", journey_id)
    # Before anything is stored or sent: the executor's records of this run must fit too.
    record_size.require_fits(
        _run_record_sizes(resources, journey_id, patient_id, context, definition)
    )
    if idempotency_key is None:
        run_id, sent = uuid.uuid4(), False
    else:
        run_id = await idempotency.claim(
            resources.pool, journey_id, caller.subject, idempotency_key, context, patient_key,
            secret=resources.settings.patient_key_secret.get_secret_value(),
        )  # fmt: skip
        sent = await idempotency.published(
            resources.pool, journey_id, caller.subject, idempotency_key
        )
    touched(run_id=run_id)
    response.headers["Location"] = f"/journeys/runs/{run_id}"
    if sent:  # a retry of a request whose StartRun the broker has: never a second one
        return RunAccepted(run_id=run_id)
    command = StartRun(
        run_id=run_id, journey_id=journey_id, patient_id=patient_id, patient_context=context,
        definition=definition, requested_at=datetime.now(UTC),
    )  # fmt: skip
    # Sending again a StartRun whose key is claimed but not marked published covers a crash
    # between the claim and the produce; the executor rejects it if the first one got there.
    if resources.settings.patient_data_sealing:
        check = None
        if idempotency_key is not None:
            check = partial(
                idempotency.require_not_erased, journey_id=journey_id, subject=caller.subject,
                key=idempotency_key,
            )  # fmt: skip
        await _publish_sealed(resources, command, patient_key, check)
    else:
        await resources.publish(
            resources.topics.commands, patient_key, command,
            subject=run_id, event_id=str(uuid.uuid5(run_id, "command.start_run")),
        )  # fmt: skip
    if idempotency_key is not None:
        await idempotency.mark_published(
            resources.pool, journey_id, caller.subject, idempotency_key
        )
    return RunAccepted(run_id=run_id)


async def _publish_sealed(
    resources: Resources, command: StartRun, patient_key: str, check: Check | None
) -> None:
    """The StartRun sealed under the patient's data key (made at their first trigger), produced
    while the key is held: an erasure's delete of the key waits until Kafka has the command,
    so the command is on the partition before the erasure's. The key is let go before the
    wait for the read models. `check`: the claim of the request's Idempotency-Key was not
    erased by an erasure that ran since the claim."""
    topic = resources.topics.commands
    async with resources.data_keys.held(patient_key, create=True, check=check) as held:
        assert held is not None  # made above if missing, and held since
        sealed = seal_start_run(command, held.key, held.wrapped, patient_key)
        metadata = await resources.publish(
            topic, patient_key, sealed, subject=command.run_id,
            event_id=str(uuid.uuid5(command.run_id, "command.start_run")), wait=False,
        )  # fmt: skip
    await resources.wait_projected(topic, metadata, command.run_id)


def _run_record_sizes(
    resources: Resources, journey_id: UUID, patient_id: str, context: dict[str, Any],
    definition: JourneyDefinition,
) -> dict[str, int]:  # fmt: skip
    """The sizes of the records a run makes, sealed when the API seals."""
    sealed_for = None
    if resources.settings.patient_data_sealing:
        sealed_for = (resources.data_keys.keyring, resources.patient_key(patient_id))
    return record_size.run_record_sizes(
        journey_id, patient_id, context, definition, sealed_for=sealed_for
    )


def _view(row: Row) -> JourneyView:
    return JourneyView.model_validate(
        {"journeyId": row["journey_id"], **row["definition"], "createdAt": row["created_at"]}
    )
