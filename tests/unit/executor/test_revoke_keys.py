"""A replica that loses partitions forgets the data keys it unwrapped: another replica may
erase those partitions' patients now, and this one must not be able to open their data."""

from __future__ import annotations

from aiokafka import TopicPartition

from journeys_executor.app import Executor
from journeys_executor.settings import ExecutorSettings
from journeys_runtime.shredding import DataKey

PATIENT = "c" * 64


async def test_revoking_partitions_forgets_every_unwrapped_data_key() -> None:
    executor = Executor(ExecutorSettings())
    key = DataKey.generate()
    executor.data_keys.open(PATIENT, executor.data_keys.keyring.wrap(PATIENT, key))
    assert len(executor.data_keys) == 1

    await executor.on_partitions_revoked({TopicPartition("commands", 0)})

    assert len(executor.data_keys) == 0
