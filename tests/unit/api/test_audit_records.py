"""What the HTTP layer records for each request, and what it refuses before recording.

The records go to a list here (tests/unit/api/conftest.py); tests/integration/api/test_audit.py
writes them to a real Kafka and reads them back.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import httpx
from fastapi import FastAPI
from fastapi.routing import APIRoute

from journeys_api.audit import ACTION_KEY, AuditedRoute
from journeys_api.auth import PROTECTED_PREFIXES
from journeys_api.errors import UnavailableError
from journeys_api.routers import (
    analytics,
    channels,
    deliveries,
    events,
    imports,
    journeys,
    ops,
    patients,
    runs,
)
from journeys_contracts.audit import AccessRecorded, AuditAction, AuditOutcome, outcome_of
from journeys_contracts.keys import patient_key
from journeys_runtime.settings import DEV_PATIENT_KEY_SECRET
from tests.unit.api.conftest import JOURNEY_ID, offline_app


def records(app: FastAPI) -> list[AccessRecorded]:
    return list(app.state.audit_records)


def test_every_journey_run_and_patient_route_is_audited_under_an_action_of_its_own() -> None:
    """One action per route, with two exceptions that name one kind of access each: listing
    runs has two forms (the patient id in the query, or in a body), `runs.list`; erasing a
    patient has two forms and a route to follow it, `patients.erase`. The route tells them
    apart."""
    business = [r for r in (*journeys.router.routes, *runs.router.routes,
                            *patients.router.routes, *events.router.routes,
                            *deliveries.router.routes, *imports.router.routes,
                            *analytics.router.routes)
                if isinstance(r, APIRoute)]  # fmt: skip
    assert len(business) == 24
    assert all(isinstance(r, AuditedRoute) for r in business)
    assert all(r.path.startswith(PROTECTED_PREFIXES) for r in business)
    actions = {f"{sorted(r.methods)[0]} {r.path}": (r.openapi_extra or {})[ACTION_KEY]
               for r in business}  # fmt: skip
    assert actions["GET /journeys/runs"] == actions["POST /journeys/runs/search"] == "runs.list"
    erasure_routes = ["POST /patients/erasures", "DELETE /patients/{patientId}",
                      "GET /patients/erasures/{erasureId}"]  # fmt: skip
    assert {actions.pop(r) for r in erasure_routes} == {"patients.erase"}
    del actions["POST /journeys/runs/search"]
    # The SMS gateway's webhook is signed, not authenticated by token: audited all the same.
    inbound = [r for r in channels.router.routes if isinstance(r, APIRoute)]
    assert [r.path for r in inbound] == ["/channels/sms/inbound"]
    assert all(isinstance(r, AuditedRoute) for r in inbound)
    assert not any(r.path.startswith(PROTECTED_PREFIXES) for r in inbound)
    actions |= {r.path: (r.openapi_extra or {})[ACTION_KEY] for r in inbound}
    assert sorted([*actions.values(), "patients.erase"]) == sorted(a.value for a in AuditAction)
    # Probes and metrics are not accesses to patient data.
    ops_routes = [*ops.router.routes, *ops.metrics_router.routes]
    assert ops_routes
    assert not any(isinstance(r, AuditedRoute) for r in ops_routes)


def test_the_openapi_document_names_each_routes_audit_action() -> None:
    document = offline_app().openapi()
    trigger = document["paths"]["/journeys/{journeyId}/trigger"]["post"]
    assert trigger[ACTION_KEY] == AuditAction.RUN_TRIGGER.value


async def test_a_rejected_request_is_recorded_with_who_sent_it(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    response = await client.post("/journeys", json={"name": "no nodes"})
    assert response.status_code == 422
    [record] = records(app)
    assert (record.subject, record.action, record.method, record.route) == (
        "dev", AuditAction.JOURNEY_CREATE, "POST", "/journeys")  # fmt: skip
    assert (record.status, record.outcome) == (422, AuditOutcome.REJECTED)
    assert record.request_id == response.headers["X-Request-ID"]


async def test_a_refused_credential_is_recorded_without_a_subject(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    response = await client.get("/journeys", headers={"X-API-Key": "", "Authorization":
                                                      "Bearer not-a-token"})  # fmt: skip
    assert response.status_code == 401
    [record] = records(app)
    assert (record.subject, record.outcome, record.status) == (None, AuditOutcome.DENIED, 401)


async def test_no_credentials_at_all_is_401_before_the_body_is_read_and_unrecorded(
    app: FastAPI,
) -> None:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as anonymous:
        broken = await anonymous.post(
            "/journeys", content=b"{not json", headers={"content-type": "application/json"}
        )
        huge = await anonymous.post("/journeys", content=b"x" * 2_000_000)
        unknown = await anonymous.get("/journeys/anything/at/all")
        health = await anonymous.get("/health")
    for response in (broken, huge, unknown):
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"] == 'Bearer realm="patient-journeys"'
    assert health.status_code == 200
    assert records(app) == []


async def test_ids_in_the_path_are_recorded_only_when_they_are_ids(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    run_id = uuid.uuid4()
    not_an_id = await client.get("/journeys/runs/Jane%20Doe")
    unreachable = await client.get(f"/journeys/runs/{run_id}")  # no PostgreSQL here
    assert (not_an_id.status_code, unreachable.status_code) == (422, 503)
    first, second = records(app)
    assert first.run_ids == []
    assert "Jane" not in first.model_dump_json()
    assert second.run_ids == [run_id]
    assert (second.outcome, second.action) == (AuditOutcome.FAILED, AuditAction.RUN_READ)


async def test_a_trigger_records_the_patients_keyed_hash_never_the_id(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    response = await client.post(f"/journeys/{JOURNEY_ID}/trigger", json={"id": "pat-981"})
    assert response.status_code == 503  # the journey lookup needs PostgreSQL
    [record] = records(app)
    assert record.patient_keys == [patient_key(DEV_PATIENT_KEY_SECRET, "pat-981")]
    assert record.journey_id == uuid.UUID(JOURNEY_ID)
    assert "pat-981" not in record.model_dump_json()


async def test_an_answer_whose_record_cannot_be_written_becomes_503(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    async def kafka_away(_: AccessRecorded, *, wait: bool = True) -> None:
        raise UnavailableError("kafka", "no acknowledgement in time")

    app.state.resources.record_access = kafka_away
    for response in (
        await client.post("/journeys", json={"name": "no nodes"}),  # would be 422
        await client.get("/journeys/runs/not-an-id"),  # would be 422
    ):
        assert response.status_code == 503
        assert response.headers["Retry-After"]
        assert response.json() == {"detail": "kafka is unavailable, retry later"}


async def test_a_503_for_kafka_does_not_wait_for_kafka_again(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    """Kafka just failed this request: its record is handed over without waiting, or the
    client would wait a second produce timeout for a 503 that discloses nothing."""
    journey = {
        "name": "j",
        "start_node_id": "a",
        "nodes": [{"id": "a", "type": "MESSAGE", "message": "hi", "next_node_id": None}],
    }
    kafka_away = await client.post("/journeys", json=journey)  # no producer in this app
    postgres_away = await client.get(f"/journeys/runs/{uuid.uuid4()}")
    assert (kafka_away.status_code, postgres_away.status_code) == (503, 503)
    assert kafka_away.json() == {"detail": "kafka is unavailable, retry later"}
    assert app.state.audit_waited == [False, True]
    assert [r.outcome for r in records(app)] == [AuditOutcome.FAILED] * 2


def test_outcomes_follow_the_status() -> None:
    assert [outcome_of(s) for s in (200, 202, 401, 403, 404, 409, 413, 422, 500, 503)] == [
        AuditOutcome.SUCCEEDED, AuditOutcome.SUCCEEDED, AuditOutcome.DENIED,
        AuditOutcome.DENIED, AuditOutcome.REJECTED, AuditOutcome.REJECTED,
        AuditOutcome.REJECTED, AuditOutcome.REJECTED, AuditOutcome.FAILED, AuditOutcome.FAILED,
    ]  # fmt: skip


def test_whatever_subject_the_issuer_chose_can_be_recorded() -> None:
    """A record the contract refused would turn the caller's answer into a 500."""
    record = AccessRecorded(
        audit_id=uuid.uuid4(), occurred_at=datetime.now(UTC), subject="jwt:" + "s" * 10_000,
        action=AuditAction.RUN_READ, method="GET", route="/journeys/runs/{runId}", status=200,
        outcome=AuditOutcome.SUCCEEDED, request_id="r",
    )  # fmt: skip
    assert AccessRecorded.model_validate_json(record.to_json()) == record
