"""Erasing a patient through the API, against a real Kafka and PostgreSQL: the stored erasure,
the ErasePatient command under the patient key, repeats, a Kafka outage, and `done`."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import httpx
import psycopg
from psycopg_pool import AsyncConnectionPool

from journeys_api.app import create_app
from journeys_api.erasures import Erasures
from journeys_contracts.commands import ErasePatient, decode_command
from journeys_contracts.envelope import header
from journeys_contracts.keys import patient_key
from journeys_runtime.settings import DEV_PATIENT_KEY_SECRET
from journeys_runtime.topics import Topics, ensure_topics
from tests.conftest import PARTITIONS
from tests.integration.api.conftest import DEV_KEY, Api, api_settings, serving
from tests.integration.api.helpers import audit_records, commands_on_topic, create_journey
from tests.integration.api.test_outage import delete_topic

PATIENT = "pat-erasure-5521"
KEY = patient_key(DEV_PATIENT_KEY_SECRET, PATIENT)
ERASE_TYPE = "journeys.command.erase_patient.v1"


async def erase_commands(api: Api) -> list[tuple[str, ErasePatient, Any]]:
    """(Kafka key, command, record) of every ErasePatient on the commands topic."""
    found = []
    for record in await commands_on_topic(api):
        if header(record.headers, "ce_type") == ERASE_TYPE:
            command = decode_command(record.value)
            assert isinstance(command, ErasePatient)
            found.append((record.key.decode(), command, record))
    return found


def erasure_rows(database_url: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(database_url) as conn:
        return conn.execute(
            "SELECT erasure_id, patient_key, subject, published_at IS NOT NULL "
            "FROM api_patient_erasures ORDER BY requested_at"
        ).fetchall()


def claims_of(database_url: str) -> int:
    """Claims that still tie a caller's request to a body (an erased claim keeps no body hash)."""
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM api_idempotency_claims WHERE body_hash IS NOT NULL"
        ).fetchone()
    assert row is not None
    return int(row[0])


async def test_delete_answers_202_and_puts_erase_patient_under_the_patient_key(api: Api) -> None:
    journey_id = await create_journey(api)
    triggered = await api.client.post(
        f"/journeys/{journey_id}/trigger", json={"id": PATIENT, "age": 70},
        headers={"Idempotency-Key": "order-1"},
    )  # fmt: skip
    assert triggered.status_code == 202, triggered.text
    assert claims_of(api.database_url) == 1

    response = await api.client.delete(f"/patients/{PATIENT}")

    assert response.status_code == 202, response.text
    erasure_id = response.json()["erasureId"]
    assert response.json() == {"erasureId": erasure_id, "status": "pending"}
    assert response.headers["Location"] == f"/patients/erasures/{erasure_id}"
    [(kafka_key, command, record)] = await erase_commands(api)
    assert kafka_key == KEY  # in order with the patient's other commands
    assert (str(command.erasure_id), command.patient_key) == (erasure_id, KEY)
    # The read model's runs of the patient: erased downstream even once the executor forgot them.
    assert [str(run) for run in command.run_ids] == [triggered.json()["runId"]]
    assert header(record.headers, "ce_subject") == erasure_id
    assert header(record.headers, "ce_id") == str(
        uuid.uuid5(uuid.UUID(erasure_id), "command.erase_patient")
    )
    assert PATIENT.encode() not in record.value + b"".join(v for _, v in record.headers)
    assert erasure_rows(api.database_url) == [(uuid.UUID(erasure_id), KEY, "dev", True)]
    assert claims_of(api.database_url) == 0  # the key no longer ties the caller to the run
    starts_before = len(await commands_on_topic(api))
    retried = await api.client.post(
        f"/journeys/{journey_id}/trigger", json={"id": PATIENT, "age": 70},
        headers={"Idempotency-Key": "order-1"},
    )  # fmt: skip
    # Same key, same run id: started again, the erased patient would get its messages again.
    assert retried.status_code == 409, retried.text
    assert "erased" in retried.json()["detail"]
    assert PATIENT not in retried.text
    assert len(await commands_on_topic(api)) == starts_before
    audit = (await audit_records(api.settings.kafka_bootstrap_servers, api.topics))[
        response.headers["X-Request-ID"]
    ]
    assert (audit.action, audit.route, audit.patient_keys) == (
        "patients.erase", "/patients/{patientId}", [KEY])  # fmt: skip
    assert PATIENT not in audit.model_dump_json()


async def test_a_repeat_while_pending_answers_the_same_erasure_and_sends_nothing_more(
    api: Api,
) -> None:
    answers = [
        await api.client.post("/patients/erasures", json={"patientId": PATIENT}),
        await api.client.post("/patients/erasures", json={"patientId": PATIENT}),
        await api.client.delete(f"/patients/{PATIENT}"),
    ]
    assert [a.status_code for a in answers] == [202] * 3
    assert len({a.json()["erasureId"] for a in answers}) == 1
    assert len(await erase_commands(api)) == 1
    assert len(erasure_rows(api.database_url)) == 1


async def test_a_repeat_after_the_patient_came_back_is_a_new_erasure_that_reaches_the_new_run(
    api: Api,
) -> None:
    """The first erasure's command is out; the patient is triggered again (a new data key,
    a new run the executor has after that command). Answering the pending erasure would delete
    the new key but send nothing that stops the new run."""
    first = await api.client.post("/patients/erasures", json={"patientId": PATIENT})
    journey_id = await create_journey(api)
    again = await api.client.post(f"/journeys/{journey_id}/trigger", json={"id": PATIENT})
    assert again.status_code == 202, again.text

    second = await api.client.post("/patients/erasures", json={"patientId": PATIENT})

    assert second.status_code == 202, second.text
    assert second.json()["erasureId"] != first.json()["erasureId"]
    commands = await erase_commands(api)
    assert [str(c.erasure_id) for _, c, _ in commands] == [
        first.json()["erasureId"], second.json()["erasureId"]]  # fmt: skip
    # A plain repeat right after still answers the pending one.
    third = await api.client.post("/patients/erasures", json={"patientId": PATIENT})
    assert third.json()["erasureId"] == second.json()["erasureId"]
    assert len(await erase_commands(api)) == 2


async def test_concurrent_requests_for_one_patient_agree_on_one_erasure(read_models: str) -> None:
    """Twenty at once, each on a connection of its own, as replicas would be."""
    async with AsyncConnectionPool(
        read_models, min_size=20, max_size=20, kwargs={"autocommit": True}
    ) as pool:
        erasures = Erasures(pool)
        found = await asyncio.gather(
            *(erasures.request(KEY, PATIENT, f"key:caller-{i}") for i in range(20))
        )
    assert len({e.erasure_id for e in found}) == 1
    assert len(erasure_rows(read_models)) == 1


async def test_an_erasure_is_pending_until_the_projector_records_it_then_done(api: Api) -> None:
    erasure_id = (await api.client.post("/patients/erasures", json={"patientId": PATIENT})).json()[
        "erasureId"
    ]

    pending = await api.client.get(f"/patients/erasures/{erasure_id}")
    assert pending.status_code == 200, pending.text
    assert pending.json()["status"] == "pending"
    assert pending.json()["doneAt"] is None
    with psycopg.connect(api.database_url, autocommit=True) as conn:  # as the projector would
        conn.execute(
            "INSERT INTO erased_patients (erasure_id, patient_key, erased_at, runs_deleted) "
            "VALUES (%s, %s, '2025-03-01T10:00:00Z', 0)", (erasure_id, KEY),
        )  # fmt: skip
    done = await api.client.get(f"/patients/erasures/{erasure_id}")

    assert done.json() == {
        "erasureId": erasure_id, "status": "done",
        "requestedAt": pending.json()["requestedAt"], "doneAt": "2025-03-01T10:00:00Z",
    }  # fmt: skip
    # Done: erasing the patient again is a new erasure (their data may have come back).
    again = await api.client.post("/patients/erasures", json={"patientId": PATIENT})
    assert again.json()["erasureId"] != erasure_id
    unknown = await api.client.get(f"/patients/erasures/{uuid.uuid4()}")
    assert unknown.status_code == 404
    assert unknown.json()["detail"].startswith("erasure ")


async def test_without_the_projectors_erasure_table_an_erasure_reads_pending(
    kafka_bootstrap: str, read_models: str, topics: Topics
) -> None:
    """An API upgraded before the projector that creates `erased_patients`."""
    with psycopg.connect(read_models, autocommit=True) as conn:
        conn.execute("DROP TABLE erased_patients")
    async with serving(api_settings(kafka_bootstrap, read_models, topics)) as client:
        created = await client.post("/patients/erasures", json={"patientId": PATIENT})
        erasure_id = created.json()["erasureId"]
        response = await client.get(f"/patients/erasures/{erasure_id}")

    assert (created.status_code, response.status_code) == (202, 200)
    assert response.json()["status"] == "pending"


async def test_kafka_away_is_503_and_the_outbox_sends_the_erasure_once_kafka_is_back(
    kafka_bootstrap: str, read_models: str, topics: Topics
) -> None:
    """The commands topic gone is Kafka refusing this record: the answer is a 503 within the
    answer deadline, the erasure stays stored unpublished, and the outbox loop sends it when
    the topic is back, with no further request."""
    settings = api_settings(
        kafka_bootstrap, read_models, topics, produce_timeout_seconds=1.5,
        answer_timeout_seconds=3.0, erasure_outbox_seconds=0.2,
    )  # fmt: skip
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=transport, base_url="http://api", headers={"X-API-Key": DEV_KEY}
        ) as client,
    ):
        assert app.state.resources.publisher.connected
        await delete_topic(kafka_bootstrap, topics.commands)
        started = time.monotonic()
        response = await client.post("/patients/erasures", json={"patientId": PATIENT})
        elapsed = time.monotonic() - started

        assert response.status_code == 503, response.text
        assert response.headers["Retry-After"] == "5"
        assert PATIENT not in response.text
        assert elapsed < settings.answer_timeout_seconds + 0.5
        [(erasure_id, _, _, published)] = erasure_rows(read_models)
        assert not published

        await ensure_topics(kafka_bootstrap, topics, PARTITIONS)
        deadline = time.monotonic() + 30
        while not erasure_rows(read_models)[0][3]:  # the outbox's pass marks it published
            assert time.monotonic() < deadline, "the outbox never sent the erasure"
            await asyncio.sleep(0.2)

    api = Api(client, settings, read_models, topics)
    [(kafka_key, command, _)] = await erase_commands(api)
    assert (kafka_key, command.erasure_id) == (KEY, erasure_id)
