"""The audit trail over a real Kafka: what each record says, and no answer without one."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import httpx
from aiokafka.admin import AIOKafkaAdminClient
from prometheus_client import REGISTRY

from journeys_api.resources import Resources
from journeys_contracts.audit import AccessRecorded, AuditAction, AuditOutcome
from journeys_contracts.envelope import header
from journeys_contracts.keys import patient_key
from journeys_runtime.topics import Topics
from tests.integration.api.conftest import DEV_KEY, NO_EXECUTOR, Api, api_settings, serving
from tests.integration.api.helpers import audit_records, create_journey, read_topic
from tests.integration.api.projector_sim import simulated_projector
from tests.unit.api.journeys import HIP_REPLACEMENT_JOURNEY

PATIENT = "patient-audit-7f3a"
CONTEXT = {"id": PATIENT, "age": 70, "diagnosis": "audit-marker-diagnosis"}


def request_id(response: httpx.Response) -> str:
    return response.headers["X-Request-ID"]


@NO_EXECUTOR
async def test_each_access_is_recorded_with_who_what_and_the_result(api: Api) -> None:
    key = patient_key(api.settings.patient_key_secret.get_secret_value(), PATIENT)
    client = api.client
    created = await client.post("/journeys", json=HIP_REPLACEMENT_JOURNEY)
    journey_id = uuid.UUID(created.json()["journeyId"])
    triggered = await client.post(f"/journeys/{journey_id}/trigger", json=CONTEXT)
    run_id = uuid.UUID(triggered.json()["runId"])
    read = await client.get(f"/journeys/runs/{run_id}")
    timeline = await client.get(f"/journeys/runs/{run_id}/events")
    by_patient = await client.get("/journeys/runs", params={"patientId": PATIENT})
    nobody = await client.get("/journeys/runs", params={"patientId": "nobody-here"})
    unknown = await client.get(f"/journeys/runs/{uuid.uuid4()}")
    cancelled = await client.post(f"/journeys/runs/{run_id}/cancel")
    refused = await client.get(f"/journeys/runs/{run_id}", headers={"X-API-Key": "pjk_bad"})
    journeys = await client.get("/journeys")
    assert [r.status_code for r in (created, triggered, read, timeline, by_patient, nobody,
                                    unknown, cancelled, refused, journeys)] == [
        201, 202, 200, 200, 200, 200, 404, 202, 401, 200]  # fmt: skip

    records = await audit_records(api.settings.kafka_bootstrap_servers, api.topics)
    assert len(records) == 10

    def check(response: httpx.Response, action: AuditAction, **expected: object) -> None:
        record = records[request_id(response)]
        assert record.action is action
        assert record.status == response.status_code
        for name, value in expected.items():
            assert getattr(record, name) == value, (action, name)

    check(created, AuditAction.JOURNEY_CREATE, subject="dev", journey_id=journey_id,
          run_ids=[], patient_keys=[], outcome=AuditOutcome.SUCCEEDED, method="POST",
          route="/journeys")  # fmt: skip
    check(triggered, AuditAction.RUN_TRIGGER, journey_id=journey_id, run_ids=[run_id],
          patient_keys=[key], route="/journeys/{journeyId}/trigger")  # fmt: skip
    check(read, AuditAction.RUN_READ, run_ids=[run_id], patient_keys=[key],
          route="/journeys/runs/{runId}", method="GET")  # fmt: skip
    check(timeline, AuditAction.RUN_EVENTS_READ, run_ids=[run_id], patient_keys=[key],
          route="/journeys/runs/{runId}/events")  # fmt: skip
    check(by_patient, AuditAction.RUN_LIST, run_ids=[run_id], patient_keys=[key],
          route="/journeys/runs")  # fmt: skip
    # A patient looked up and not found was still looked up.
    nobody_key = patient_key(api.settings.patient_key_secret.get_secret_value(), "nobody-here")
    check(nobody, AuditAction.RUN_LIST, run_ids=[], patient_keys=[nobody_key])
    check(unknown, AuditAction.RUN_READ, outcome=AuditOutcome.REJECTED, patient_keys=[])
    check(cancelled, AuditAction.RUN_CANCEL, run_ids=[run_id], patient_keys=[key],
          method="POST")  # fmt: skip
    check(refused, AuditAction.RUN_READ, subject=None, outcome=AuditOutcome.DENIED,
          run_ids=[run_id], patient_keys=[])  # fmt: skip
    check(journeys, AuditAction.JOURNEY_LIST, run_ids=[], patient_keys=[])


async def test_records_hold_identifiers_only_and_cloudevent_headers(api: Api) -> None:
    journey_id = await create_journey(api)
    response = await api.client.post(f"/journeys/{journey_id}/trigger", json=CONTEXT)
    assert response.status_code == 202
    assert (await api.client.get(response.headers["Location"])).status_code == 200

    raw = await read_topic(api.settings.kafka_bootstrap_servers, api.topics.audit)
    assert len(raw) == 3
    for record in raw:
        assert record.key is None
        value = AccessRecorded.model_validate_json(record.value)
        assert header(record.headers, "ce_type") == value.type
        assert header(record.headers, "ce_id") == header(record.headers, "ce_subject")
        assert header(record.headers, "ce_id") == str(value.audit_id)
        everything = record.value + b"".join(v for _, v in record.headers)
        for secret in (PATIENT, "audit-marker-diagnosis", DEV_KEY):
            assert secret.encode() not in everything


async def test_no_answer_leaves_without_its_record(
    kafka_bootstrap: str, read_models: str, topics: Topics
) -> None:
    """With the audit topic gone, the API cannot record, so it does not answer: 503, even for
    a read that PostgreSQL alone could serve."""
    settings = api_settings(kafka_bootstrap, read_models, topics, produce_timeout_seconds=1)
    async with simulated_projector(kafka_bootstrap, read_models, topics), serving(settings) as c:
        created = await c.post("/journeys", json=HIP_REPLACEMENT_JOURNEY)
        assert created.status_code == 201
        journey_id = created.json()["journeyId"]
        failures_before = _audit_failures()
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
        await admin.start()
        try:
            await admin.delete_topics([topics.audit])
        finally:
            await admin.close()
        for response in (
            await c.get(f"/journeys/{journey_id}"),
            await c.get("/journeys/runs", params={"patientId": PATIENT}),
            await c.get(f"/journeys/runs/{uuid.uuid4()}"),  # would be a 404
        ):
            assert response.status_code == 503, response.text
            assert response.headers["Retry-After"]
            assert journey_id not in response.text
        assert _audit_failures() == failures_before + 3


async def test_a_record_handed_over_without_waiting_still_reaches_kafka(
    kafka_bootstrap: str, read_models: str, topics: Topics
) -> None:
    """The path of a 503 for Kafka: the record is enqueued, not waited for, and arrives."""
    resources = Resources(api_settings(kafka_bootstrap, read_models, topics))
    await resources.start()
    try:
        record = AccessRecorded(
            audit_id=uuid.uuid4(), occurred_at=datetime.now(UTC), subject="dev",
            action=AuditAction.RUN_TRIGGER, method="POST", route="/journeys/{journeyId}/trigger",
            status=503, outcome=AuditOutcome.FAILED, request_id="enqueued-1",
        )  # fmt: skip
        await resources.record_access(record, wait=False)
    finally:
        await resources.stop()  # flushes what the producer holds
    records = await audit_records(kafka_bootstrap, topics)
    assert records["enqueued-1"] == record


def _audit_failures() -> float:
    """The process-wide counter: other tests in this process may have moved it too."""
    return REGISTRY.get_sample_value("journeys_api_audit_failures_total") or 0.0


async def test_a_search_is_recorded_like_a_listing_found_or_not(api: Api) -> None:
    key = patient_key(api.settings.patient_key_secret.get_secret_value(), PATIENT)
    created = await api.client.post("/journeys", json=HIP_REPLACEMENT_JOURNEY)
    triggered = await api.client.post(
        f"/journeys/{created.json()['journeyId']}/trigger", json=CONTEXT
    )
    run_id = uuid.UUID(triggered.json()["runId"])

    found = await api.client.post("/journeys/runs/search", json={"patientId": PATIENT})
    nobody = await api.client.post("/journeys/runs/search", json={"patientId": "nobody-here"})

    assert [found.status_code, nobody.status_code] == [200, 200]
    records = await audit_records(api.settings.kafka_bootstrap_servers, api.topics)
    searched, missed = records[request_id(found)], records[request_id(nobody)]
    assert searched.action is AuditAction.RUN_LIST
    assert (searched.method, searched.route) == ("POST", "/journeys/runs/search")
    assert (searched.run_ids, searched.patient_keys) == ([run_id], [key])
    nobody_key = patient_key(api.settings.patient_key_secret.get_secret_value(), "nobody-here")
    assert (missed.run_ids, missed.patient_keys) == ([], [nobody_key])
    assert PATIENT not in str(searched.model_dump())
