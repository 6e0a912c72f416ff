"""POST /events on a real Kafka and PostgreSQL: each accepted event is one RecordPatientEvent
command on the commands topic under its patient's key, sealed when the API seals, in Kafka
before the 202; a refused body sends nothing."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from journeys_api import keys
from journeys_contracts.audit import AuditAction
from journeys_contracts.commands import (
    RecordPatientEvent,
    RecordPatientEventSealed,
    decode_command,
    receipt_id,
)
from journeys_contracts.envelope import header
from journeys_contracts.keys import patient_key
from journeys_runtime.kafka import partitioner
from journeys_runtime.sealing import from_wire, open_value
from journeys_runtime.settings import DEV_PATIENT_KEY_SECRET
from journeys_runtime.topics import Topics
from tests.integration.api.conftest import Api, api_settings, serving
from tests.integration.api.helpers import KEYRING, audit_records, commands_on_topic, data_key
from tests.integration.api.projector_sim import simulated_projector
from tests.integration.api.test_outage import closed_port
from tests.integration.api.test_sealing import key_rows, keys_and_erasures, produce_erasure
from tests.integration.api.test_sealing_races import serving_resources

pytestmark = pytest.mark.integration

PATIENT = "patient-events-7781"
KEY = patient_key(DEV_PATIENT_KEY_SECRET, PATIENT)
MARKER = "marker-event-data-okapi"


def event(event_id: str = "ehr-1", patient: str = PATIENT, **fields: Any) -> dict[str, Any]:
    return {"eventId": event_id, "patientId": patient, "type": "appointment.booked", **fields}


def cloudevent(event_id: str, patient: str, **fields: Any) -> dict[str, Any]:
    return {"specversion": "1.0", "id": event_id, "source": "/ehr", "subject": patient,
            "type": "appointment.booked", **fields}  # fmt: skip


async def post(api: Api, body: Any, content_type: str = "application/json", **kw: Any) -> Any:
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    return await api.client.post(
        "/events", content=content, headers={"Content-Type": content_type, **kw}
    )


def clear_api(kafka_bootstrap: str, read_models: str, topics: Topics) -> Any:
    return api_settings(kafka_bootstrap, read_models, topics, JOURNEYS_PATIENT_DATA_SEALING=False)


async def test_an_event_is_a_sealed_command_under_its_patients_key_in_kafka_before_202(
    api: Api,
) -> None:
    response = await post(api, event(occurredAt="2026-12-03T11:00:00+01:00",
                                     data={"note": MARKER, "clinicId": "clinic-7"}))  # fmt: skip

    assert response.status_code == 202, response.text
    assert response.json() == {"accepted": 1, "duplicates": 0}
    [record] = await commands_on_topic(api)
    receipt = str(receipt_id(KEY, "ehr-1"))
    assert record.key == KEY.encode()
    assert header(record.headers, "ce_type") == "journeys.command.record_patient_event.v2"
    assert header(record.headers, "ce_id") == header(record.headers, "ce_subject") == receipt
    assert PATIENT.encode() not in record.value
    assert MARKER.encode() not in record.value
    command = decode_command(record.value)
    assert isinstance(command, RecordPatientEventSealed)
    assert (str(command.receipt_id), command.event_id, command.patient_key) == (
        receipt, "ehr-1", KEY)  # fmt: skip
    assert (command.event_type, command.source) == ("appointment.booked", "api")
    assert command.occurred_at == datetime(2026, 12, 3, 10, tzinfo=UTC)
    [(_, kid, _)] = key_rows(api.database_url)
    assert command.data_key.kid == command.patient_id.kid == command.event_data.kid == kid
    assert KEYRING.unwrap(KEY, from_wire(command.data_key)).kid == kid
    key = data_key(api.database_url, KEY)
    assert open_value(key, KEY, "patientId", command.patient_id) == PATIENT
    assert open_value(key, KEY, "eventData", command.event_data) == {
        "note": MARKER,
        "clinicId": "clinic-7",
    }
    # Only the clinic's figures for its weekly analytics travel in clear, by design.
    assert command.clinic is not None
    assert command.clinic.model_dump(exclude_none=True) == {"clinic_id": "clinic-7"}
    audit = [r for r in (await audit_records(api.settings.kafka_bootstrap_servers,
                                             api.topics)).values()
             if r.action == AuditAction.EVENTS_RECORD]  # fmt: skip
    assert [(r.status, r.patient_keys) for r in audit] == [(202, [KEY])]


async def test_a_batch_sends_each_event_once_and_counts_repeats_within_it(api: Api) -> None:
    others = [f"patient-batch-{i}" for i in range(3)]
    order = [("a", 0), ("b", 1), ("a", 0), ("a", 1), ("c", 2), ("b", 1)]
    batch = [event(e, others[p], data={"n": n}) for n, (e, p) in enumerate(order, 1)]

    response = await post(api, {"events": batch})

    assert response.status_code == 202, response.text
    assert response.json() == {"accepted": 4, "duplicates": 2}
    opened = set()
    for record in await commands_on_topic(api):
        command = decode_command(record.value)
        assert isinstance(command, RecordPatientEventSealed)
        assert record.key == command.patient_key.encode()
        key = data_key(api.database_url, command.patient_key)
        opened.add(
            (
                open_value(key, command.patient_key, "patientId", command.patient_id),
                command.event_id,
                open_value(key, command.patient_key, "eventData", command.event_data)["n"],
            )
        )
    # The first of each repeat is the one sent.
    assert opened == {(others[0], "a", 1), (others[1], "b", 2), (others[1], "a", 4),
                      (others[2], "c", 5)}  # fmt: skip
    assert len(key_rows(api.database_url)) == 3  # one data key per patient, made at once


async def test_with_sealing_off_the_four_body_forms_are_clear_v1_commands(
    kafka_bootstrap: str, read_models: str, topics: Topics
) -> None:
    time = "2026-12-03T10:00:00Z"
    async with serving(clear_api(kafka_bootstrap, read_models, topics)) as client:
        api = Api(client, clear_api(kafka_bootstrap, read_models, topics), read_models, topics)
        before = datetime.now(UTC)
        answers = [
            await post(api, event("json-1", data={"n": 1})),
            await post(api, {"events": [event("json-2", occurredAt=time), event("json-3")]}),
            await post(api, cloudevent("ce-1", PATIENT, time=time, data={"n": 2},
                                       datacontenttype="application/json", traceparent="00-x"),
                       "application/cloudevents+json"),
            await post(api, [cloudevent("ce-2", PATIENT), cloudevent("ce-3", 4711)],
                       "application/cloudevents-batch+json"),
        ]  # fmt: skip

    assert [(a.status_code, a.json()["accepted"]) for a in answers] == [
        (202, 1), (202, 2), (202, 1), (202, 2)]  # fmt: skip
    commands = {c.event_id: c for c in
                (decode_command(r.value) for r in await commands_on_topic(api))}  # fmt: skip
    assert all(isinstance(c, RecordPatientEvent) for c in commands.values())
    assert sorted(commands) == ["ce-1", "ce-2", "ce-3", "json-1", "json-2", "json-3"]
    ce = commands["ce-1"]
    assert isinstance(ce, RecordPatientEvent)
    assert (ce.patient_id, ce.event_type, ce.event_data) == (PATIENT, "appointment.booked",
                                                             {"n": 2})  # fmt: skip
    assert ce.occurred_at == commands["json-2"].occurred_at == datetime.fromisoformat(time)
    defaulted = commands["json-1"]
    assert isinstance(defaulted, RecordPatientEvent)
    assert before <= defaulted.occurred_at == defaulted.received_at  # receipt time
    numeric = commands["ce-3"]
    assert isinstance(numeric, RecordPatientEvent)
    assert numeric.patient_id == "4711"
    assert numeric.patient_key == patient_key(DEV_PATIENT_KEY_SECRET, "4711")
    assert key_rows(read_models) == []


async def test_a_batch_with_bad_events_is_422_naming_each_index_and_field_and_sends_nothing(
    api: Api,
) -> None:
    batch = [event(f"ok-{i}") for i in range(5)]
    batch[1] = event("bad-type", type="Appointment Booked")
    batch[3] = {"eventId": "no-patient", "type": "appointment.booked"}
    batch[4] = event("naive-time", occurredAt="2026-12-03T10:00:00")

    response = await post(api, {"events": batch})

    assert response.status_code == 422, response.text
    errors = [(e["loc"], e["type"]) for e in response.json()["detail"]]
    assert errors == [
        (["body", "events", 1, "type"], "string_pattern_mismatch"),
        (["body", "events", 3, "patientId"], "missing"),
        (["body", "events", 4, "occurredAt"], "timezone_aware"),
    ]
    assert PATIENT not in response.text
    assert (await post(api, b"{not json", "application/json")).status_code == 422
    assert await commands_on_topic(api) == []
    assert key_rows(api.database_url) == []


async def test_other_media_types_are_415_and_over_1000_events_413_sending_nothing(
    api: Api,
) -> None:
    one = orjson.dumps(event())
    answers = {
        "text/plain": await api.client.post("/events", content=one,
                                            headers={"Content-Type": "text/plain"}),
        "none": await api.client.post("/events", content=one, headers={"Content-Type": ""}),
        "1001 events": await post(api, {"events": [event(f"e-{i}") for i in range(1001)]}),
        "record too large": await post(api, event(data={"blob": "x" * 900_000})),
    }  # fmt: skip

    assert {name: a.status_code for name, a in answers.items()} == {
        "text/plain": 415, "none": 415, "1001 events": 413, "record too large": 413}  # fmt: skip
    assert "at most 1000 events" in answers["1001 events"].json()["detail"]
    assert answers["record too large"].json()["detail"].startswith("event 0: the ")
    assert await commands_on_topic(api) == []


async def test_without_the_events_write_scope_it_is_403(api: Api) -> None:
    trigger_only = keys.create(api.database_url, "ehr-trigger", ["runs:trigger"])
    writer = keys.create(api.database_url, "ehr-events", ["events:write"])

    refused = await post(api, event(), **{"X-API-Key": trigger_only})
    allowed = await post(api, event(), **{"X-API-Key": writer})

    assert refused.status_code == 403
    assert refused.json() == {"detail": "this route needs the scope events:write"}
    assert allowed.status_code == 202, allowed.text
    assert len(await commands_on_topic(api)) == 1


async def test_kafka_unreachable_is_503_with_retry_after(read_models: str, topics: Topics) -> None:
    settings = api_settings(f"127.0.0.1:{closed_port()}", read_models, topics)
    async with serving(settings) as client:
        response = await client.post("/events", json=event())

    assert response.status_code == 503, response.text
    assert response.headers["retry-after"] == "5"
    assert response.json() == {"detail": "kafka is unavailable, retry later"}


async def test_a_wait_looking_back_further_than_the_limit_is_422(
    kafka_bootstrap: str, read_models: str, topics: Topics
) -> None:
    settings = api_settings(kafka_bootstrap, read_models, topics,
                            JOURNEYS_MAX_LOOKBACK_SECONDS=3600)  # fmt: skip
    journey = {"name": "wait for the form", "start_node_id": "wait", "nodes": [
        {"id": "wait", "type": "WAIT_FOR_EVENT", "event": "intake_form.submitted",
         "timeout_seconds": 172800, "lookback_seconds": 3601,
         "on_event_next_node_id": None, "on_timeout_next_node_id": None}]}  # fmt: skip
    async with (
        simulated_projector(kafka_bootstrap, read_models, topics),
        serving(settings) as client,
    ):
        refused = await client.post("/journeys", json=journey)
        journey["nodes"][0]["lookback_seconds"] = 3600
        accepted = await client.post("/journeys", json=journey)

    assert refused.status_code == 422
    [error] = refused.json()["detail"]
    assert error["loc"] == ["body", "nodes", 0, "lookback_seconds"]
    assert "at most 3600" in error["msg"]
    assert accepted.status_code == 201, accepted.text


@pytest.mark.parametrize("existing_key", [True, False], ids=["existing-key", "first-key"])
async def test_a_batch_holding_its_patients_keys_delays_their_erasure(
    read_models: str, existing_key: bool
) -> None:
    """The race rule for many patients at once: while a batch holds its patients' keys (until
    Kafka has its sealed commands), an erasure of any of them waits."""
    other = patient_key(DEV_PATIENT_KEY_SECRET, "patient-events-other")
    async with keys_and_erasures(read_models) as (_, data_keys, erasures):
        if existing_key:
            async with data_keys.held_many([KEY]):
                pass
        async with data_keys.held_many([other, KEY]) as held:
            assert set(held) == {KEY, other}
            erasure = asyncio.create_task(erasures.request(KEY, PATIENT, "dev", produce_erasure))
            await asyncio.sleep(0.5)
            assert not erasure.done()  # waiting for the batch to let go of the key
        assert (await asyncio.wait_for(erasure, 5)).published
        assert [k for k, _, _ in key_rows(read_models)] == [other]


async def test_an_erasure_producing_its_command_delays_a_batch_which_then_makes_a_new_key(
    read_models: str,
) -> None:
    acknowledged = asyncio.Event()

    async def slow_produce(_: Any) -> None:
        await acknowledged.wait()

    async with keys_and_erasures(read_models) as (_, data_keys, erasures):
        async with data_keys.held_many([KEY]) as first:
            erased_kid = first[KEY].key.kid
        erasure = asyncio.create_task(erasures.request(KEY, PATIENT, "dev", slow_produce))
        await asyncio.sleep(0.3)

        async def batch(keys_: list[str]) -> str:
            async with data_keys.held_many(keys_) as held:
                return held[KEY].key.kid

        waiting = asyncio.create_task(batch(["0" * 64, KEY]))
        await asyncio.sleep(0.5)
        assert not waiting.done()  # waiting for the erasure's command
        acknowledged.set()
        await asyncio.wait_for(erasure, 5)
        new_kid = await asyncio.wait_for(waiting, 5)

    assert new_kid != erased_kid


async def test_concurrent_batches_making_the_same_first_keys_agree_on_one_key_each(
    read_models: str,
) -> None:
    patients = [patient_key(DEV_PATIENT_KEY_SECRET, f"patient-new-{i}") for i in range(50)]
    async with keys_and_erasures(read_models) as (_, data_keys, _erasures):

        async def batch(keys_: list[str]) -> dict[str, str]:
            async with data_keys.held_many(keys_) as held:
                await asyncio.sleep(0.05)
                return {k: h.key.kid for k, h in held.items()}

        seen = await asyncio.wait_for(asyncio.gather(
            batch(patients), batch(patients[::-1]), batch(patients[10:30])), 10)  # fmt: skip

    assert seen[0] == seen[1]
    assert seen[2].items() <= seen[0].items()
    assert len(key_rows(read_models)) == 50


async def test_an_event_acknowledged_after_the_batch_timed_out_keeps_the_erasure_waiting(
    kafka_bootstrap: str, read_models: str, topics: Topics
) -> None:
    """Kafka takes the patient's sealed event (the producer batch of its partition) only after
    the request gave up on it (503). It is still on its way: the batch's keys stay held until
    it is in Kafka, so an erasure asked meanwhile waits, and its ErasePatient follows the
    event on the partition."""
    acknowledge = asyncio.Event()
    delivering: list[asyncio.Task[None]] = []
    async with serving_resources(
        kafka_bootstrap, read_models, topics, produce_timeout_seconds=0.5
    ) as (api, resources):
        producer = resources.publisher._producer
        assert producer is not None
        real_send_batch = producer.send_batch
        partitions = sorted(await producer.partitions_for(topics.commands))
        late_partition = partitioner(KEY.encode(), partitions, partitions)

        async def late_batch(batch: Any, topic: str, *, partition: int) -> Any:
            """The batch holding the patient's event reaches Kafka only once let go."""
            if topic != topics.commands or partition != late_partition:
                return await real_send_batch(batch, topic, partition=partition)
            late: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

            async def deliver() -> None:
                await acknowledge.wait()
                late.set_result(await (await real_send_batch(batch, topic, partition=partition)))

            delivering.append(asyncio.create_task(deliver()))
            return late

        producer.send_batch = late_batch  # type: ignore[method-assign]
        batch = {"events": [event("on-time", "patient-events-other"), event("late")]}
        sent = await post(api, batch)
        assert sent.status_code == 503, sent.text
        erasure = asyncio.create_task(api.client.delete(f"/patients/{PATIENT}"))
        await asyncio.sleep(1.0)
        erasure_waited = not erasure.done()
        acknowledge.set()
        erased = await asyncio.wait_for(erasure, 10)

    assert erased.status_code == 202, erased.text
    assert erasure_waited, "the erasure went ahead while the batch's event was on its way"
    mine = sorted((r for r in await commands_on_topic(api) if r.key == KEY.encode()),
                  key=lambda r: r.offset)  # fmt: skip
    assert [header(r.headers, "ce_type") for r in mine] == [
        "journeys.command.record_patient_event.v2",
        "journeys.command.erase_patient.v1",
    ]
