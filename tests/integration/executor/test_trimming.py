"""The executor trims the commands it and the other readers are done with, and no more."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiokafka import TopicPartition

from journeys_contracts.envelope import CloudEvent
from journeys_runtime import kafka
from journeys_runtime.topics import Topics
from tests.conftest import PARTITIONS
from tests.integration.executor.process import executor_process
from tests.integration.executor.test_executor import SECRET
from tests.integration.executor.test_sealed import Patient
from tests.integration.runtime.test_trimming import _commit, _first_offsets

pytestmark = pytest.mark.integration

TRIM_SECONDS = 0.5


async def _end_offsets(bootstrap: str, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
    c = kafka.consumer(bootstrap, None)
    await c.start()
    try:
        return dict(await c.end_offsets(tps))
    finally:
        await c.stop()


async def _committed(
    bootstrap: str, group: str, tps: list[TopicPartition]
) -> dict[TopicPartition, int | None]:
    c = kafka.consumer(bootstrap, group)
    await c.start()
    try:
        return {tp: await c.committed(tp) for tp in tps}
    finally:
        await c.stop()


async def test_consumed_commands_leave_the_topic_once_every_reader_has_them(
    kafka_bootstrap: str, topics: Topics, tmp_path: Path
) -> None:
    reader = f"{topics.prefix}reader-{uuid.uuid4().hex[:6]}"
    patient = Patient("trim")
    with executor_process(
        kafka_bootstrap, topics, tmp_path, JOURNEYS_PATIENT_KEY_SECRET=SECRET,
        EXECUTOR_COMMANDS_TRIM_SECONDS=str(TRIM_SECONDS), EXECUTOR_COMMANDS_READERS=reader,
    ):  # fmt: skip
        p = kafka.producer(kafka_bootstrap)
        await p.start()
        try:
            for _ in range(3):
                run_id = uuid.uuid4()
                command = patient.start(run_id)
                envelope = CloudEvent(str(uuid.uuid4()), command.type, "/tests", str(run_id),
                                      datetime.now(UTC))  # fmt: skip
                await p.send_and_wait(topics.commands, command.to_json(),
                                      key=patient.key.encode(),
                                      headers=envelope.headers())  # fmt: skip
        finally:
            await p.stop()
        partitions = [TopicPartition(topics.commands, n) for n in range(PARTITIONS)]
        ends = await _end_offsets(kafka_bootstrap, partitions)
        tp = next(t for t, end in ends.items() if end > 0)
        group = f"{topics.prefix}journeys-executor"
        deadline = time.monotonic() + 30
        # At or past: the delivery service's reports follow the starts on the same partition.
        while ((await _committed(kafka_bootstrap, group, [tp]))[tp] or 0) < ends[tp]:
            assert time.monotonic() < deadline, "the executor did not consume the commands"
            await asyncio.sleep(0.2)
        # The other reader has committed nothing: the executor alone having them trims nothing.
        await asyncio.sleep(TRIM_SECONDS * 6)
        assert (await _first_offsets(kafka_bootstrap, [tp]))[tp] == 0
        await _commit(kafka_bootstrap, reader, {tp: ends[tp] - 1})
        deadline = time.monotonic() + 30
        while (await _first_offsets(kafka_bootstrap, [tp]))[tp] != ends[tp] - 1:
            assert time.monotonic() < deadline, "consumed commands were not trimmed"
            await asyncio.sleep(0.2)
