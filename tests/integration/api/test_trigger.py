"""Triggering: a 202 means a StartRun in Kafka, keyed by patient key; retries are idempotent.

The API seals the patient's id and context (start_run.v2); these tests read the commands as
the executor does, opened with the patient's data key (tests/integration/api/test_sealing.py
is about the sealing itself)."""

from __future__ import annotations

import hashlib
import json
import uuid

import psycopg

from journeys_api import keys
from journeys_api.idempotency import key_hash, run_id_for
from journeys_contracts.commands import StartRun, decode_command
from journeys_contracts.envelope import header
from journeys_contracts.keys import patient_key
from tests.integration.api.conftest import Api
from tests.integration.api.helpers import commands_on_topic, create_journey, opened_command
from tests.unit.api.journeys import HIP_REPLACEMENT_JOURNEY

CONTEXT = {"id": "patient-123", "age": 72, "language": "en", "condition": "hip_replacement"}


async def test_trigger_puts_start_run_on_commands_keyed_by_patient_key(api: Api) -> None:
    journey_id = await create_journey(api)

    response = await api.client.post(f"/journeys/{journey_id}/trigger", json=CONTEXT)

    assert response.status_code == 202, response.text
    run_id = response.json()["runId"]
    assert response.headers["location"] == f"/journeys/runs/{run_id}"
    [record] = await commands_on_topic(api)
    secret = api.settings.patient_key_secret.get_secret_value()
    assert record.key == patient_key(secret, "patient-123").encode()
    assert b"patient-123" not in b"".join(v for _, v in record.headers)
    assert header(record.headers, "ce_type") == "journeys.command.start_run.v2"
    assert header(record.headers, "ce_subject") == run_id
    assert header(record.headers, "ce_source") == "/journeys/api"
    assert header(record.headers, "ce_specversion") == "1.0"
    command = opened_command(api.database_url, record.value)
    assert isinstance(command, StartRun)
    assert str(command.run_id) == run_id
    assert command.patient_id == "patient-123"
    assert command.patient_context == CONTEXT
    assert command.definition.model_dump() == HIP_REPLACEMENT_JOURNEY


async def test_run_is_readable_right_after_202(api: Api) -> None:
    journey_id = await create_journey(api)

    accepted = await api.client.post(f"/journeys/{journey_id}/trigger", json=CONTEXT)
    run = await api.client.get(f"/journeys/runs/{accepted.json()['runId']}")

    assert run.status_code == 200, run.text
    body = run.json()
    assert body["status"] == "queued"
    assert body["patientId"] == "patient-123"
    assert body["journeyId"] == journey_id
    assert body["patientContext"] == CONTEXT


async def test_same_idempotency_key_and_body_return_the_same_run(api: Api) -> None:
    journey_id = await create_journey(api)
    headers = {"Idempotency-Key": "order-77"}

    first = await api.client.post(f"/journeys/{journey_id}/trigger", json=CONTEXT, headers=headers)
    reordered = dict(reversed(list(CONTEXT.items())))
    second = await api.client.post(
        f"/journeys/{journey_id}/trigger", json=reordered, headers=headers
    )

    assert first.status_code == second.status_code == 202, (first.text, second.text)
    assert first.json()["runId"] == second.json()["runId"]
    async with await psycopg.AsyncConnection.connect(api.database_url) as conn:
        cursor = await conn.execute(
            "SELECT subject, key_hash, body_hash, run_id FROM api_idempotency_claims"
        )
        rows = await cursor.fetchall()
        cursor = await conn.execute("SELECT count(*) FROM api_idempotency_keys")
        unscoped = await cursor.fetchone()
    assert unscoped == (0,)  # the previous version's table is for its own pods' keys
    assert len(rows) == 1
    subject, key_hash, body_hash, run_id = rows[0]
    assert subject == "dev"
    assert str(run_id) == first.json()["runId"]
    assert "order-77" not in key_hash
    assert "patient-123" not in body_hash
    produced = [str(decode_command(r.value).run_id) for r in await commands_on_topic(api)]
    assert produced == [str(run_id)]


async def test_a_retry_of_a_published_key_produces_no_second_start_run(api: Api) -> None:
    """However late the retry comes: the executor forgets a run a while after it ended, and a
    second StartRun would then start the journey again."""
    journey_id = await create_journey(api)
    headers = {"Idempotency-Key": "order-79"}
    url = f"/journeys/{journey_id}/trigger"
    first = await api.client.post(url, json=CONTEXT, headers=headers)
    async with await psycopg.AsyncConnection.connect(api.database_url) as conn:
        cursor = await conn.execute("SELECT published_at FROM api_idempotency_claims")
        assert [row[0] is not None for row in await cursor.fetchall()] == [True]

    retries = [await api.client.post(url, json=CONTEXT, headers=headers) for _ in range(3)]

    assert {r.status_code for r in retries} == {202}
    assert {r.json()["runId"] for r in retries} == {first.json()["runId"]}
    assert {r.headers["location"] for r in retries} == {first.headers["location"]}
    assert len(await commands_on_topic(api)) == 1


async def test_a_retry_of_a_key_whose_start_was_not_acknowledged_publishes_it(api: Api) -> None:
    """A crash between the claim and the broker's answer leaves the key unpublished: the retry
    sends the StartRun (again, if the broker had it after all; the executor rejects that)."""
    journey_id = await create_journey(api)
    headers = {"Idempotency-Key": "order-80"}
    url = f"/journeys/{journey_id}/trigger"
    first = await api.client.post(url, json=CONTEXT, headers=headers)
    async with await psycopg.AsyncConnection.connect(api.database_url) as conn:
        await conn.execute("UPDATE api_idempotency_claims SET published_at = NULL")

    retry = await api.client.post(url, json=CONTEXT, headers=headers)

    assert retry.json()["runId"] == first.json()["runId"]
    produced = [str(decode_command(r.value).run_id) for r in await commands_on_topic(api)]
    assert produced == [first.json()["runId"]] * 2


async def test_same_idempotency_key_with_another_body_is_422_naming_the_header(api: Api) -> None:
    journey_id = await create_journey(api)
    headers = {"Idempotency-Key": "order-78"}
    await api.client.post(f"/journeys/{journey_id}/trigger", json=CONTEXT, headers=headers)

    response = await api.client.post(
        f"/journeys/{journey_id}/trigger", json={**CONTEXT, "age": 73}, headers=headers
    )

    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"] == ["header", "idempotency-key"]
    assert "different request body" in error["msg"]


async def test_trigger_of_unknown_journey_is_404_and_produces_nothing(api: Api) -> None:
    unknown = uuid.uuid4()

    response = await api.client.post(f"/journeys/{unknown}/trigger", json=CONTEXT)

    assert response.status_code == 404
    assert response.json() == {"detail": f"journey {unknown} not found"}
    assert await commands_on_topic(api) == []


async def test_the_same_idempotency_key_from_two_callers_names_two_runs(api: Api) -> None:
    """Keys are scoped to the authenticated caller: a client that happens to pick another's
    key (a counter, an order number) must neither get nor disclose the other's run."""
    journey_id = await create_journey(api)
    clinic_a = keys.create(api.database_url, "clinic-a", ["runs:trigger"])
    clinic_b = keys.create(api.database_url, "clinic-b", ["runs:trigger"])
    clinic_c = keys.create(api.database_url, "clinic-c", ["runs:trigger"])
    path = f"/journeys/{journey_id}/trigger"

    async def trigger(key: str, context: dict[str, object]) -> str:
        headers = {"X-API-Key": key, "Idempotency-Key": "order-1"}
        response = await api.client.post(path, json=context, headers=headers)
        assert response.status_code == 202, response.text
        return str(response.json()["runId"])

    a_first = await trigger(clinic_a, CONTEXT)
    c_first = await trigger(clinic_c, CONTEXT)  # the same body too: still its own run
    b_first = await trigger(clinic_b, {**CONTEXT, "id": "patient-456"})  # another body, no 422
    a_retry = await trigger(clinic_a, CONTEXT)
    b_retry = await trigger(clinic_b, {**CONTEXT, "id": "patient-456"})

    assert a_first == a_retry
    assert b_first == b_retry
    assert len({a_first, b_first, c_first}) == 3
    produced = [opened_command(api.database_url, r.value) for r in await commands_on_topic(api)]
    assert {str(c.run_id): c.patient_id for c in produced if isinstance(c, StartRun)} == {
        a_first: "patient-123",
        b_first: "patient-456",
        c_first: "patient-123",
    }


def plain_sha256(context: dict[str, object]) -> str:
    """The body hash as versions before keyed hashes wrote it."""
    canonical = json.dumps(context, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


async def test_a_claims_body_hash_is_keyed_so_a_guessed_context_cannot_be_confirmed(
    api: Api,
) -> None:
    """A reader of the table who guesses a context (an id, an age, a language) must not be able
    to confirm it by hashing it: the hash is an HMAC under the patient-key secret, marked so."""
    journey_id = await create_journey(api)
    await api.client.post(
        f"/journeys/{journey_id}/trigger", json=CONTEXT, headers={"Idempotency-Key": "order-81"}
    )

    async with await psycopg.AsyncConnection.connect(api.database_url) as conn:
        cursor = await conn.execute("SELECT body_hash FROM api_idempotency_claims")
        [(stored,)] = await cursor.fetchall()
    assert stored != plain_sha256(CONTEXT)
    assert plain_sha256(CONTEXT) not in stored
    assert stored.startswith("hmac-sha256:")


async def test_a_claim_with_the_previous_versions_plain_hash_still_answers_its_run(
    api: Api,
) -> None:
    """Claimed by a pod of the previous version (a rolling upgrade): its retry reaching this
    version gets the same run, and another body is still told apart."""
    journey_id = await create_journey(api)
    run_id = run_id_for(uuid.UUID(journey_id), "dev", "order-82")
    async with await psycopg.AsyncConnection.connect(api.database_url, autocommit=True) as conn:
        await conn.execute(
            "INSERT INTO api_idempotency_claims (journey_id, subject, key_hash, body_hash, "
            "run_id, created_at) VALUES (%s, 'dev', %s, %s, %s, now())",
            (journey_id, key_hash("order-82"), plain_sha256(CONTEXT), run_id),
        )
    url, headers = f"/journeys/{journey_id}/trigger", {"Idempotency-Key": "order-82"}

    retry = await api.client.post(url, json=CONTEXT, headers=headers)
    other = await api.client.post(url, json={**CONTEXT, "age": 73}, headers=headers)

    assert retry.status_code == 202, retry.text
    assert retry.json()["runId"] == str(run_id)
    assert other.status_code == 422, other.text
