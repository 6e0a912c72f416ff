"""Given/when helpers of the API's integration tests."""

from __future__ import annotations

import psycopg
from aiokafka import ConsumerRecord, TopicPartition

from journeys_contracts.audit import AccessRecorded, decode_audit
from journeys_contracts.commands import CancelRunSealed, Command, StartRunSealed, decode_command
from journeys_runtime.kafka import consumer
from journeys_runtime.keyring import DEV_KEKS, Keyring
from journeys_runtime.sealing import open_cancel_run, open_start_run
from journeys_runtime.shredding import DataKey, WrappedKey
from journeys_runtime.topics import Topics
from tests.conftest import PARTITIONS
from tests.integration.api.conftest import Api
from tests.unit.api.journeys import HIP_REPLACEMENT_JOURNEY


async def create_journey(api: Api) -> str:
    """The hip replacement journey, created through the API."""
    response = await api.client.post("/journeys", json=HIP_REPLACEMENT_JOURNEY)
    assert response.status_code == 201, response.text
    return str(response.json()["journeyId"])


async def commands_on_topic(api: Api) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record on the commands topic, read to its current end."""
    return await records_on_topic(api, api.topics.commands)


# The development settings' keyring, which every API of these tests wraps data keys under.
KEYRING = Keyring.parse(DEV_KEKS, "dev")


def data_key(database_url: str, patient_key: str) -> DataKey:
    """The patient's data key as the API keeps it, unwrapped."""
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT kid, kek_id, wrapped FROM api_patient_data_keys WHERE patient_key = %s",
            (patient_key,),
        ).fetchone()
    assert row is not None, "the patient has no data key"
    return KEYRING.unwrap(patient_key, WrappedKey(row[0], row[1], bytes(row[2])))


def opened_command(database_url: str, value: bytes) -> Command:
    """A command as the executor reads it: a sealed one opened with its patient's key."""
    command = decode_command(value)
    if isinstance(command, StartRunSealed):
        return open_start_run(command, data_key(database_url, command.patient_key))
    if isinstance(command, CancelRunSealed):
        return open_cancel_run(command, data_key(database_url, command.patient_key))
    return command


async def records_on_topic(api: Api, topic: str) -> list[ConsumerRecord[bytes, bytes]]:
    return await read_topic(api.settings.kafka_bootstrap_servers, topic)


async def audit_records(bootstrap: str, topics: Topics) -> dict[str, AccessRecorded]:
    """Every audit record written so far, by request id (each answer's X-Request-ID)."""
    records = [decode_audit(r.value) for r in await read_topic(bootstrap, topics.audit)]
    by_request = {r.request_id: r for r in records}
    assert len(by_request) == len(records), "one request, one record"
    return by_request


async def read_topic(bootstrap: str, topic: str) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record on `topic`, read to its current end."""
    c = consumer(bootstrap, None)
    await c.start()
    try:
        parts = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        c.assign(parts)
        await c.seek_to_beginning(*parts)
        ends = await c.end_offsets(parts)
        records: list[ConsumerRecord[bytes, bytes]] = []
        while any([await c.position(tp) < ends[tp] for tp in parts]):
            for batch in (await c.getmany(timeout_ms=200)).values():
                records.extend(batch)
        return records
    finally:
        await c.stop()
