"""Races between a patient's sealed commands and their erasure, on a real Kafka and PostgreSQL:
Kafka's acknowledgement is late, an erasure commits while a cancel is under way, an erasure is
published twice. The API's producer or its read model is wrapped only to time the race."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import psycopg
import pytest

from journeys_api.app import create_app
from journeys_api.resources import Resources
from journeys_contracts.commands import (
    CancelRun,
    CancelRunSealed,
    ErasePatient,
    StartRunSealed,
    decode_command,
)
from journeys_runtime.topics import Topics
from tests.integration.api.conftest import DEV_KEY, NO_EXECUTOR, Api, api_settings
from tests.integration.api.helpers import commands_on_topic, create_journey
from tests.integration.api.projector_sim import simulated_projector
from tests.integration.api.test_sealing import (
    CONTEXT,
    KEY,
    PATIENT,
    a_patient_key,
    insert_sealed_run,
    key_rows,
    keys_and_erasures,
)

pytestmark = pytest.mark.integration


@contextlib.asynccontextmanager
async def serving_resources(
    kafka_bootstrap: str, read_models: str, topics: Topics, **overrides: Any
) -> AsyncIterator[tuple[Api, Resources]]:
    """The API as the `api` fixture serves it, and its resources, to time a race through."""
    settings = api_settings(kafka_bootstrap, read_models, topics, **overrides)
    app = create_app(settings)
    async with (
        simulated_projector(kafka_bootstrap, read_models, topics),
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://api",
            headers={"X-API-Key": DEV_KEY},
        ) as client,
    ):  # fmt: skip
        yield Api(client, settings, read_models, topics), app.state.resources


def commands_of(records: list[Any]) -> list[Any]:
    return [decode_command(r.value) for r in sorted(records, key=lambda r: r.offset)]


async def test_a_start_run_acknowledged_after_the_trigger_timed_out_keeps_the_erasure_waiting(
    kafka_bootstrap: str, read_models: str, topics: Topics
) -> None:
    """Kafka takes the sealed StartRun only after the trigger gave up on it (503). The record is
    still in the producer's hands, on its way: the patient's key stays held until it is in
    Kafka, so an erasure asked meanwhile waits, and its ErasePatient follows the StartRun on
    the partition (else the executor would start, after the erasure, a run of an erased
    patient under a deleted key)."""
    acknowledge = asyncio.Event()
    delivering: list[asyncio.Task[None]] = []
    async with serving_resources(
        kafka_bootstrap, read_models, topics, produce_timeout_seconds=0.5
    ) as (api, resources):
        journey_id = await create_journey(api)
        producer = resources.publisher._producer
        assert producer is not None
        real_send = producer.send

        async def late_start_run(
            topic: str, value: bytes, key: bytes, partition: Any = None,
            timestamp_ms: Any = None, headers: Any = None,
        ) -> asyncio.Future[Any]:  # fmt: skip
            message = {"value": value, "key": key, "headers": headers}
            if topic != api.topics.commands or b"start_run" not in dict(headers)["ce_type"]:
                return await real_send(topic, **message)
            late: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

            async def deliver() -> None:
                await acknowledge.wait()
                metadata = await (await real_send(topic, **message))
                if not late.done():  # the caller's wait may have cancelled it, as it may aiokafka's
                    late.set_result(metadata)

            delivering.append(asyncio.create_task(deliver()))
            return late

        producer.send = late_start_run  # type: ignore[method-assign]
        triggered = await api.client.post(f"/journeys/{journey_id}/trigger", json=CONTEXT)
        assert triggered.status_code == 503, triggered.text
        erasure = asyncio.create_task(api.client.delete(f"/patients/{PATIENT}"))
        await asyncio.sleep(1.0)
        erasure_waited = not erasure.done()
        acknowledge.set()
        erased = await asyncio.wait_for(erasure, 10)

    assert erased.status_code == 202, erased.text
    assert erasure_waited, "the erasure went ahead while the trigger's StartRun was on its way"
    kinds = [type(c) for c in commands_of(await commands_on_topic(api))]
    assert kinds == [StartRunSealed, ErasePatient]
    assert key_rows(read_models) == []


async def test_a_cancel_of_a_sealed_run_whose_patient_is_erased_meanwhile_is_404_and_sends_nothing(
    kafka_bootstrap: str, read_models: str, topics: Topics
) -> None:
    """The erasure commits between the cancel's opening of the run and its hold of the key: the
    reason, which may quote patient data, must not go out in clear, nor the cancel at all
    (the run is answered 404, as a read of it now is)."""
    async with serving_resources(kafka_bootstrap, read_models, topics) as (api, resources):
        key = a_patient_key(api)
        run_id = await insert_sealed_run(api, key, await create_journey(api))
        open_keys = resources.data_keys.open_many

        async def open_then_erase(patient_keys: Any) -> Any:
            opened = await open_keys(patient_keys)
            with psycopg.connect(read_models, autocommit=True) as conn:
                conn.execute("DELETE FROM api_patient_data_keys")  # the erasure's commit
            return opened

        resources.data_keys.open_many = open_then_erase  # type: ignore[method-assign]
        cancel = await api.client.post(
            f"/journeys/runs/{run_id}/cancel", json={"reason": f"{PATIENT} moved away"}
        )

    assert cancel.status_code == 404, cancel.text
    records = await commands_on_topic(api)
    assert not any(PATIENT.encode() in r.value for r in records)
    assert not any(isinstance(c, CancelRun | CancelRunSealed) for c in commands_of(records))


@NO_EXECUTOR
async def test_a_cancel_reason_of_an_unsealed_run_goes_in_clear_though_the_patient_has_a_key(
    api: Api,
) -> None:
    """A run from before sealing, of a patient triggered (sealed) since: its data is in clear
    already, and the executor, holding it unsealed, refuses a sealed cancel of it."""
    a_patient_key(api)
    journey_id = await create_journey(api)
    run_id = uuid.uuid4()
    with psycopg.connect(api.database_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO runs (run_id, journey_id, patient_id, patient_key, status, "
            "patient_context, created_at, updated_at) "
            "VALUES (%s, %s, %s, %s, 'in_progress', %s, now(), now())",
            (run_id, journey_id, PATIENT, KEY, json.dumps(CONTEXT)),
        )

    response = await api.client.post(f"/journeys/runs/{run_id}/cancel", json={"reason": "moved"})

    assert response.status_code == 202, response.text
    [cancel] = [c for c in commands_of(await commands_on_topic(api))
                if isinstance(c, CancelRun | CancelRunSealed)]  # fmt: skip
    assert isinstance(cancel, CancelRun)
    assert cancel.reason == "moved"


async def test_an_erasure_published_already_is_not_published_again(read_models: str) -> None:
    """Two senders of one stored erasure (the outbox of two replicas, or the outbox and a
    repeat of the request) each read it unpublished: the second, under the patient's lock,
    finds it published and sends nothing. Else its delete of the patient's key would erase
    the key of a trigger accepted between the two sends, and its command, after that
    trigger's StartRun, would erase the new run while its key lived on."""
    produced: list[uuid.UUID] = []

    async def unavailable(_: Any) -> None:
        raise RuntimeError("no acknowledgement in time")

    async def produce(erasure: Any) -> None:
        produced.append(erasure.erasure_id)

    async with keys_and_erasures(read_models) as (_, keys, erasures):
        with pytest.raises(RuntimeError):
            await erasures.request(KEY, PATIENT, "dev", unavailable)
        [stale] = await erasures.unpublished(0, 10)  # as both senders read it
        await erasures.publish(stale, produce)
        async with keys.held(KEY, create=True) as held:  # a trigger in between
            assert held is not None
            kid = held.key.kid
        await erasures.publish(stale, produce)

    assert produced == [stale.erasure_id]
    assert [k for _, k, _ in key_rows(read_models)] == [kid]
