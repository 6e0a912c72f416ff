"""A partition whose transactions keep failing is retried later each time, and sooner again
once one commits: a broker in trouble is not hammered, a passing blip costs little."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import KafkaError

from journeys_executor import app
from journeys_executor.settings import ExecutorSettings

TP = TopicPartition("commands", 0)


class Consumer:
    def assignment(self) -> set[TopicPartition]:
        return {TP}

    def pause(self, tp: TopicPartition) -> None:
        pass


class Batches:
    """Every transaction fails while `failing`."""

    def __init__(self) -> None:
        self.failing = True

    async def run(self, part: Any, records: Any) -> None:
        if self.failing:
            raise KafkaError("broker unavailable")


@pytest.fixture
def executor(monkeypatch: pytest.MonkeyPatch) -> Any:
    async def discard(producer: Any) -> None:
        pass

    monkeypatch.setattr(app, "discard", discard)
    executor = app.Executor(ExecutorSettings())
    executor._consumer = Consumer()
    executor.batches = Batches()
    return executor


class Delay:
    """The delay chosen, known to lie between `low` and `high`: the partition was demoted at
    some instant during the call, and a slow call (a loaded machine, a slow log handler) must
    not read as a longer delay."""

    def __init__(self, low: float, high: float) -> None:
        self.low, self.high = low, high

    def within(self, least: float, most: float) -> bool:
        return self.high >= least and self.low <= most

    def __gt__(self, other: Delay) -> bool:
        return self.low > other.high


async def delay_after_a_transaction(executor: Any) -> Delay:
    started = time.monotonic()
    await executor._commit(SimpleNamespace(tp=TP, producer=None), [])
    ended = time.monotonic()
    due = executor._pending.pop(TP, ended)
    return Delay(low=due - ended, high=due - started)


async def test_the_retry_delay_grows_to_a_cap_while_transactions_fail(executor: Any) -> None:
    delays = [await delay_after_a_transaction(executor) for _ in range(10)]
    assert delays[0].within(0.1, 0.5)
    assert delays[3] > delays[0]
    assert all(d.within(4.5, 5.0) for d in delays[7:])


async def test_a_committed_transaction_resets_the_retry_delay(executor: Any) -> None:
    for _ in range(8):
        await delay_after_a_transaction(executor)
    executor.batches.failing = False
    await delay_after_a_transaction(executor)
    executor.batches.failing = True
    assert (await delay_after_a_transaction(executor)).within(0.1, 0.5)
