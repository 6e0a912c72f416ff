"""Sealed patient data through the API, on a real Kafka and PostgreSQL: triggers seal the
patient id and context under the patient's data key, an erasure deletes the key (after the
triggers holding it), and sealed read-model rows are answered in clear while the key lives."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from functools import partial
from typing import Any

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from journeys_api.data_keys import PatientDataKeys
from journeys_api.erasures import Erasures
from journeys_contracts.commands import (
    CancelRun,
    CancelRunSealed,
    ErasePatient,
    StartRun,
    StartRunSealed,
    decode_command,
)
from journeys_contracts.definition import JourneyDefinition
from journeys_contracts.envelope import header
from journeys_contracts.events import MessageRequested, RunFailed, RunStarted
from journeys_contracts.keys import patient_key
from journeys_runtime.sealing import from_wire, open_cancel_run, open_start_run, seal_fields
from journeys_runtime.settings import DEV_PATIENT_KEY_SECRET
from journeys_runtime.shredding import DataKey
from tests.integration.api.conftest import NO_EXECUTOR, Api, api_settings, serving
from tests.integration.api.helpers import KEYRING, commands_on_topic, create_journey, data_key
from tests.integration.api.projector_sim import set_run, simulated_projector
from tests.unit.api.journeys import HIP_REPLACEMENT_JOURNEY

pytestmark = pytest.mark.integration

PATIENT = "patient-sealed-7781"
KEY = patient_key(DEV_PATIENT_KEY_SECRET, PATIENT)
CONTEXT = {"id": PATIENT, "age": 64, "note": "marker-context-zebra", "language": "fr"}
DEFINITION = JourneyDefinition.model_validate(HIP_REPLACEMENT_JOURNEY)


def key_rows(database_url: str) -> list[tuple[str, str, str]]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT patient_key, kid, kek_id FROM api_patient_data_keys ORDER BY created_at"
        ).fetchall()
    return [(str(a), str(b), str(c)) for a, b, c in rows]


async def trigger(api: Api, journey_id: str, context: dict[str, Any] = CONTEXT, **kw: Any) -> str:
    response = await api.client.post(f"/journeys/{journey_id}/trigger", json=context, **kw)
    assert response.status_code == 202, response.text
    return str(response.json()["runId"])


async def test_a_trigger_puts_a_sealed_start_run_holding_no_patient_data_in_clear(
    api: Api,
) -> None:
    journey_id = await create_journey(api)

    first = await trigger(api, journey_id)
    second = await trigger(api, journey_id, {**CONTEXT, "age": 65})

    records = await commands_on_topic(api)
    assert len(records) == 2
    [(_, kid, kek_id)] = key_rows(api.database_url)  # one key for the patient, made once
    assert kek_id == "dev"
    key = data_key(api.database_url, KEY)
    opened = []
    for record, run_id in zip(
        sorted(records, key=lambda r: r.offset), (first, second), strict=True
    ):
        assert record.key == KEY.encode()
        assert header(record.headers, "ce_type") == "journeys.command.start_run.v2"
        assert PATIENT.encode() not in record.value
        assert b"marker-context-zebra" not in record.value
        command = decode_command(record.value)
        assert isinstance(command, StartRunSealed)
        assert str(command.run_id) == run_id
        assert command.patient_key == KEY
        assert command.patient_id.kid == command.data_key.kid == kid
        # The key the command carries is the API's, wrapped: the executor opens with it.
        assert KEYRING.unwrap(KEY, from_wire(command.data_key)).kid == kid
        opened.append(open_start_run(command, key))
    assert [(c.patient_id, c.patient_context) for c in opened] == [
        (PATIENT, CONTEXT), (PATIENT, {**CONTEXT, "age": 65}),
    ]  # fmt: skip


async def test_a_sealed_run_is_readable_in_clear_right_after_202(api: Api) -> None:
    journey_id = await create_journey(api)

    run_id = await trigger(api, journey_id)
    response = await api.client.get(f"/journeys/runs/{run_id}")

    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["patientId"], body["patientContext"]) == (PATIENT, CONTEXT)
    with psycopg.connect(api.database_url) as conn:
        stored = conn.execute("SELECT patient_id, patient_context FROM runs").fetchone()
    assert stored is not None
    assert stored[0] is None  # the read model holds it sealed
    assert "marker-context-zebra" not in json.dumps(stored[1])


async def test_retries_of_one_idempotency_key_name_one_sealed_run(api: Api) -> None:
    journey_id = await create_journey(api)
    headers = {"Idempotency-Key": "sealed-order-1"}

    first = await trigger(api, journey_id, headers=headers)
    again = await trigger(api, journey_id, headers=headers)
    with psycopg.connect(api.database_url) as conn:
        conn.execute("UPDATE api_idempotency_claims SET published_at = NULL")
    unacknowledged = await trigger(api, journey_id, headers=headers)

    assert first == again == unacknowledged
    commands = [decode_command(r.value) for r in await commands_on_topic(api)]
    assert [str(c.run_id) for c in commands] == [first, first]  # re-sent once, unacknowledged
    assert all(isinstance(c, StartRunSealed) for c in commands)


async def test_with_sealing_off_a_trigger_puts_start_run_v1_and_makes_no_key(
    kafka_bootstrap: str, read_models: str, topics: Any
) -> None:
    settings = api_settings(
        kafka_bootstrap, read_models, topics, JOURNEYS_PATIENT_DATA_SEALING=False
    )
    async with simulated_projector(kafka_bootstrap, read_models, topics), serving(settings) as c:
        api = Api(c, settings, read_models, topics)
        journey_id = await create_journey(api)
        run_id = await trigger(api, journey_id)
        run = await api.client.get(f"/journeys/runs/{run_id}")

    [record] = await commands_on_topic(api)
    command = decode_command(record.value)
    assert isinstance(command, StartRun)
    assert (command.patient_id, command.patient_context) == (PATIENT, CONTEXT)
    assert key_rows(read_models) == []
    assert run.json()["patientContext"] == CONTEXT


@contextlib.asynccontextmanager
async def keys_and_erasures(
    database_url: str,
) -> AsyncIterator[tuple[AsyncConnectionPool[Any], PatientDataKeys, Erasures]]:
    """The API's two stores over a pool of their own, as two requests would use them."""
    async with AsyncConnectionPool(database_url, min_size=1, max_size=4, open=False) as pool:
        await pool.open()
        yield pool, PatientDataKeys(pool, KEYRING), Erasures(pool)


async def produce_erasure(_: Any) -> None:
    """Kafka's acknowledgement of the ErasePatient, as soon as asked."""


@pytest.mark.parametrize("existing_key", [True, False], ids=["existing-key", "first-key"])
async def test_a_trigger_holding_the_key_delays_the_erasures_delete_of_it(
    read_models: str, existing_key: bool
) -> None:
    """The race rule, at the database: while a trigger holds the patient's key (until Kafka
    has its sealed command), the erasure's delete of the key waits, so the erasure's command
    can only be produced after the trigger's. A patient's first key too, which no other
    transaction sees before the trigger commits."""
    async with keys_and_erasures(read_models) as (_, keys, erasures):
        if existing_key:
            async with keys.held(KEY, create=True):
                pass
        async with keys.held(KEY, create=True) as held:
            assert held is not None
            erasure = asyncio.create_task(erasures.request(KEY, PATIENT, "dev", produce_erasure))
            await asyncio.sleep(0.5)
            assert not erasure.done()  # waiting for the trigger to let go of the key
        assert (await asyncio.wait_for(erasure, 5)).published
        assert key_rows(read_models) == []
        async with keys.held(KEY, create=False) as gone:
            assert gone is None


async def test_an_erasure_producing_its_command_delays_the_next_trigger(read_models: str) -> None:
    """A trigger after the erasure's delete but before its command is in Kafka would put its
    StartRun, under a new key, ahead of the ErasePatient: the executor would erase that run
    while its key lived on. It waits instead, and its key is made after the command."""
    acknowledged = asyncio.Event()

    async def slow_produce(_: Any) -> None:
        await acknowledged.wait()

    async with keys_and_erasures(read_models) as (_, keys, erasures):
        async with keys.held(KEY, create=True):
            pass
        [(_, erased_kid, _)] = key_rows(read_models)
        erasure = asyncio.create_task(erasures.request(KEY, PATIENT, "dev", slow_produce))
        await asyncio.sleep(0.3)

        async def trigger_key() -> str:
            async with keys.held(KEY, create=True) as held:
                assert held is not None
                return held.key.kid

        trigger = asyncio.create_task(trigger_key())
        await asyncio.sleep(0.5)
        assert not trigger.done()  # waiting for the erasure's command
        acknowledged.set()
        await asyncio.wait_for(erasure, 5)
        new_kid = await asyncio.wait_for(trigger, 5)

    assert new_kid != erased_kid
    assert [kid for _, kid, _ in key_rows(read_models)] == [new_kid]


async def test_a_trigger_whose_claim_an_erasure_marked_meanwhile_is_409_and_makes_no_key(
    read_models: str,
) -> None:
    """Claimed, then the erasure ran (marking the claim erased) while the trigger waited for
    the patient's lock: producing now would start, after the erasure, a run whose key answers
    409 as erased. The trigger is refused instead, and makes no key."""
    from fastapi import HTTPException

    from journeys_api import idempotency

    journey = uuid.uuid4()
    acknowledged = asyncio.Event()

    async def slow_produce(_: Any) -> None:
        await acknowledged.wait()

    async with keys_and_erasures(read_models) as (pool, keys, erasures):
        await idempotency.claim(
            pool, journey, "dev", "order-9", CONTEXT, KEY, secret=DEV_PATIENT_KEY_SECRET
        )
        erasure = asyncio.create_task(erasures.request(KEY, PATIENT, "dev", slow_produce))
        await asyncio.sleep(0.3)
        check = partial(idempotency.require_not_erased, journey_id=journey, subject="dev",
                        key="order-9")  # fmt: skip

        async def trigger_key() -> None:
            async with keys.held(KEY, create=True, check=check):
                raise AssertionError("the erased claim's trigger went on")

        trigger = asyncio.create_task(trigger_key())
        await asyncio.sleep(0.3)
        acknowledged.set()
        await asyncio.wait_for(erasure, 5)
        with pytest.raises(HTTPException) as refused:
            await asyncio.wait_for(trigger, 5)

    assert refused.value.status_code == 409
    assert key_rows(read_models) == []


async def test_an_erasure_deletes_the_key_before_its_command_follows_the_triggers(
    api: Api,
) -> None:
    journey_id = await create_journey(api)
    await trigger(api, journey_id, headers={"Idempotency-Key": "sealed-order-2"})
    assert len(key_rows(api.database_url)) == 1

    response = await api.client.delete(f"/patients/{PATIENT}")

    assert response.status_code == 202, response.text
    assert key_rows(api.database_url) == []
    records = await commands_on_topic(api)
    assert len({r.partition for r in records}) == 1  # one patient, one partition, in order
    kinds = [type(decode_command(r.value)) for r in sorted(records, key=lambda r: r.offset)]
    assert kinds == [StartRunSealed, ErasePatient]
    # The erased run's claim keeps no hash of the body that could confirm a guessed context.
    with psycopg.connect(api.database_url) as conn:
        claims = conn.execute("SELECT body_hash, erased_at FROM api_idempotency_claims").fetchall()
    assert [(h, e is not None) for h, e in claims] == [(None, True)]


async def test_an_erasure_clears_the_body_hash_of_a_claim_not_projected_yet(api: Api) -> None:
    """The read model does not show the run yet (the projector is behind): the claim names
    its patient key, so its body hash goes all the same."""
    journey_id = await create_journey(api)
    await trigger(api, journey_id, headers={"Idempotency-Key": "sealed-order-3"})
    with psycopg.connect(api.database_url, autocommit=True) as conn:
        conn.execute("DELETE FROM runs")

    response = await api.client.delete(f"/patients/{PATIENT}")

    assert response.status_code == 202, response.text
    with psycopg.connect(api.database_url) as conn:
        claims = conn.execute("SELECT body_hash FROM api_idempotency_claims").fetchall()
    assert claims == [(None,)]


async def insert_sealed_run(
    api: Api,
    key: DataKey,
    journey_id: str,
    *,
    error: str | None = None,
    status: str = "in_progress",
) -> str:
    """A sealed run's row and timeline, as the projector writes them from `.v2` events."""
    run_id, now = uuid.uuid4(), datetime.now(UTC)
    common = {"run_id": run_id, "journey_id": uuid.UUID(journey_id), "patient_id": PATIENT,
              "occurred_at": now, "sealed_twin": True}  # fmt: skip
    events = [
        RunStarted(seq=1, journey_name=DEFINITION.name, start_node_id="welcome",
                   patient_context=CONTEXT, definition=DEFINITION, **common),
        MessageRequested(seq=2, node_id="welcome", message_id=uuid.uuid4(),
                         message=f"Hello {PATIENT}, marker-message-okapi", **common),
    ]  # fmt: skip
    if error is not None:
        events.append(RunFailed(seq=3, node_id="welcome", reason=error, **common))
    sealed = [seal_fields(e.model_dump(mode="json", by_alias=True), key, KEY) for e in events]
    with psycopg.connect(api.database_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO runs (run_id, journey_id, patient_id, patient_key, patient_id_sealed, "
            "status, patient_context, error, error_sealed, created_at, updated_at) "
            "VALUES (%s, %s, NULL, %s, %s, %s, %s, NULL, %s, %s, %s)",
            (run_id, journey_id, KEY, json.dumps(sealed[0]["patientId"]), status,
             json.dumps(sealed[0]["patientContext"]),
             None if error is None else json.dumps(sealed[-1]["reason"]), now, now),
        )  # fmt: skip
        for data in sealed:
            conn.execute(
                "INSERT INTO run_events (run_id, seq, type, occurred_at, data) "
                "VALUES (%s, %s, %s, %s, %s)",
                (run_id, data["seq"], data["type"], now, json.dumps(data)),
            )
    return str(run_id)


def a_patient_key(api: Api) -> DataKey:
    """The patient's data key, stored wrapped as the API stores it."""
    key = DataKey.generate()
    wrapped = KEYRING.wrap(KEY, key)
    with psycopg.connect(api.database_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO api_patient_data_keys (patient_key, kid, kek_id, wrapped) "
            "VALUES (%s, %s, %s, %s)",
            (KEY, wrapped.kid, wrapped.kek_id, wrapped.wrapped),
        )
    return key


async def test_a_sealed_row_is_answered_in_clear_with_a_v1_timeline(api: Api) -> None:
    key = a_patient_key(api)
    journey_id = await create_journey(api)
    run_id = await insert_sealed_run(api, key, journey_id, error="failed for marker-error-gnu")

    run = await api.client.get(f"/journeys/runs/{run_id}")
    timeline = await api.client.get(f"/journeys/runs/{run_id}/events")

    assert run.status_code == 200, run.text
    body = run.json()
    assert body["patientId"] == PATIENT
    assert body["patientContext"] == CONTEXT
    assert body["error"] == "failed for marker-error-gnu"
    assert set(body) == {"runId", "journeyId", "patientId", "status", "currentNodeId",
                         "patientContext", "createdAt", "updatedAt", "wakeAt", "error",
                         "waitingFor", "waitingUntil"}  # fmt: skip
    assert timeline.status_code == 200, timeline.text
    events = timeline.json()["events"]
    assert [e["type"] for e in events] == [
        "journeys.run.started.v1", "journeys.message.requested.v1", "journeys.run.failed.v1",
    ]  # fmt: skip
    for event in events:
        assert event["data"]["type"] == event["type"]
        assert event["data"]["patientId"] == PATIENT
        assert "patientKey" not in event["data"]
        assert "sealedTwin" not in event["data"]
    assert events[0]["data"]["patientContext"] == CONTEXT
    assert events[1]["data"]["message"] == f"Hello {PATIENT}, marker-message-okapi"
    assert events[2]["data"]["reason"] == "failed for marker-error-gnu"


async def test_search_by_patient_finds_sealed_and_clear_rows(api: Api) -> None:
    key = a_patient_key(api)
    journey_id = await create_journey(api)
    sealed = await insert_sealed_run(api, key, journey_id)
    with psycopg.connect(api.database_url, autocommit=True) as conn:
        clear = uuid.uuid4()  # a run of the same patient from before sealing
        conn.execute(
            "INSERT INTO runs (run_id, journey_id, patient_id, status, patient_context, "
            "created_at, updated_at) VALUES (%s, %s, %s, 'in_progress', %s, now(), now())",
            (clear, journey_id, PATIENT, json.dumps(CONTEXT)),
        )
    other = await trigger(api, journey_id, {"id": "someone-else"})

    by_query = await api.client.get("/journeys/runs", params={"patientId": PATIENT})
    by_body = await api.client.post("/journeys/runs/search", json={"patientId": PATIENT})

    for page in (by_query, by_body):
        assert page.status_code == 200, page.text
        items = page.json()["items"]
        assert {i["runId"] for i in items} == {sealed, str(clear)}
        assert other not in {i["runId"] for i in items}
        assert {i["patientId"] for i in items} == {PATIENT}
        assert {json.dumps(i["patientContext"]) for i in items} == {json.dumps(CONTEXT)}


async def test_a_sealed_run_whose_key_is_gone_is_404_and_left_out_of_lists(api: Api) -> None:
    key = a_patient_key(api)
    journey_id = await create_journey(api)
    run_id = await insert_sealed_run(api, key, journey_id)
    with psycopg.connect(api.database_url, autocommit=True) as conn:
        conn.execute("DELETE FROM api_patient_data_keys")  # as an erasure does

    run = await api.client.get(f"/journeys/runs/{run_id}")
    timeline = await api.client.get(f"/journeys/runs/{run_id}/events")
    cancel = await api.client.post(f"/journeys/runs/{run_id}/cancel", json={"reason": "x"})
    listed = await api.client.get("/journeys/runs")
    searched = await api.client.post("/journeys/runs/search", json={"patientId": PATIENT})

    assert (run.status_code, timeline.status_code, cancel.status_code) == (404, 404, 404)
    assert run.json() == {"detail": f"run {run_id} not found"}
    assert listed.status_code == searched.status_code == 200
    assert listed.json()["items"] == searched.json()["items"] == []
    assert not any(isinstance(decode_command(r.value), CancelRun | CancelRunSealed)
                   for r in await commands_on_topic(api))  # fmt: skip


async def test_a_sealed_row_under_an_earlier_key_of_the_patient_is_404(api: Api) -> None:
    """Erased, then triggered again: the new key does not open the old rows."""
    earlier = DataKey.generate()
    a_patient_key(api)
    run_id = await insert_sealed_run(api, earlier, await create_journey(api))

    assert (await api.client.get(f"/journeys/runs/{run_id}")).status_code == 404
    assert (await api.client.get(f"/journeys/runs/{run_id}/events")).status_code == 404


@NO_EXECUTOR
async def test_a_cancel_reason_is_sealed_when_the_patient_has_a_key(api: Api) -> None:
    journey_id = await create_journey(api)
    run_id = await trigger(api, journey_id)
    key = data_key(api.database_url, KEY)

    response = await api.client.post(
        f"/journeys/runs/{run_id}/cancel", json={"reason": f"{PATIENT} moved away"}
    )
    await set_run(api.database_url, run_id, "in_progress")
    without_reason = await api.client.post(f"/journeys/runs/{run_id}/cancel")

    assert response.status_code == without_reason.status_code == 202
    cancels = [decode_command(r.value) for r in await commands_on_topic(api)]
    cancels = [c for c in cancels if isinstance(c, CancelRun | CancelRunSealed)]
    assert [type(c) for c in cancels] == [CancelRunSealed, CancelRun]
    sealed = cancels[0]
    assert isinstance(sealed, CancelRunSealed)
    assert sealed.patient_key == KEY
    assert PATIENT not in sealed.model_dump_json()
    assert open_cancel_run(sealed, key).reason == f"{PATIENT} moved away"
    assert cancels[1].reason is None


async def test_a_cancel_reason_of_a_patient_without_a_key_is_cancel_run_v1(
    kafka_bootstrap: str, read_models: str, topics: Any
) -> None:
    settings = api_settings(
        kafka_bootstrap, read_models, topics, JOURNEYS_PATIENT_DATA_SEALING=False,
        **NO_EXECUTOR.kwargs,
    )  # fmt: skip
    async with simulated_projector(kafka_bootstrap, read_models, topics), serving(settings) as c:
        api = Api(c, settings, read_models, topics)
        run_id = await trigger(api, await create_journey(api))
        response = await c.post(f"/journeys/runs/{run_id}/cancel", json={"reason": "moved"})

    assert response.status_code == 202, response.text
    commands = [decode_command(r.value) for r in await commands_on_topic(api)]
    [cancel] = [c for c in commands if isinstance(c, CancelRun | CancelRunSealed)]
    assert isinstance(cancel, CancelRun)
    assert cancel.reason == "moved"


async def test_a_key_that_does_not_unwrap_is_500_naming_no_data(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    """A key wrapped under a key-encryption key the settings no longer hold: our fault, told
    as such, with the error's type in the log and nothing of the patient's anywhere."""
    key = a_patient_key(api)
    run_id = await insert_sealed_run(api, key, await create_journey(api))
    with psycopg.connect(api.database_url, autocommit=True) as conn:
        conn.execute("UPDATE api_patient_data_keys SET kek_id = 'retired'")

    with caplog.at_level(logging.INFO):
        run = await api.client.get(f"/journeys/runs/{run_id}")
        trig = await api.client.post(f"/journeys/{await create_journey(api)}/trigger", json=CONTEXT)

    for response in (run, trig):
        assert response.status_code == 500
        assert response.json() == {"detail": "internal error"}
    logged = [r for r in caplog.records if r.getMessage() == "patient data key unusable"]
    assert [getattr(r, "error", None) for r in logged] == ["WrongKeyError", "WrongKeyError"]
    text = caplog.text + run.text + trig.text
    assert PATIENT not in text
    assert "marker-context-zebra" not in text
    assert all(r.exc_info is None for r in caplog.records)
