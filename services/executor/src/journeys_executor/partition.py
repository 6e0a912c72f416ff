"""One command partition, processed in Kafka transactions: events, run changes, offset, at once.

A batch of the partition's commands becomes one transaction of the partition's own
transactional producer: every event it emits, every dead letter, the new state of every run
it touched (to the changelog partition with the same number) and the offset after its last
command. The transaction commits all of them or none, so after any crash the committed run
table is exactly the fold of the committed events, and the committed offset says which
commands produced them.

The transactional id is derived from the partition, not the replica: whoever takes the
partition over initialises the same id, which fences every earlier holder (a crashed,
paused or partitioned replica). A fenced producer can no longer add to or commit a
transaction, so a zombie's work is aborted, never doubled.

Within a batch, commands of different patients are processed concurrently, in waves that
hold at most one command per patient key: each patient's commands (and so each run's) are
decided in record order, while the broker round trips before message deliveries (see
`process`) are shared by the whole wave instead of paid one delivery at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.structs import ConsumerRecord
from pydantic import ValidationError

from journeys_contracts import events as ev
from journeys_contracts.commands import Command, decode_command
from journeys_contracts.envelope import CloudEvent, event_id
from journeys_executor.channels import Channel
from journeys_executor.core import RunState
from journeys_executor.metrics import COMMANDS, EVENTS, PROCESS_SECONDS, TRANSACTION_SECONDS
from journeys_executor.processing import Outcome, process
from journeys_executor.runs import Runs
from journeys_runtime import kafka
from journeys_runtime.crash import crash_point
from journeys_runtime.dlq import describe_validation_error, dlq_headers
from journeys_runtime.logs import run_id_var
from journeys_runtime.topics import Topics

log = logging.getLogger(__name__)

SOURCE = "/journeys/executor"


def transactional_id(group_id: str, tp: TopicPartition) -> str:
    return f"{group_id}:{tp.topic}:{tp.partition}"


async def fenced_producer(bootstrap: str, txn_id: str, wait_seconds: float) -> AIOKafkaProducer:
    """A started transactional producer whose id is initialised: every earlier producer with
    this id is fenced and its open transaction, if any, is finished by the coordinator."""
    producer = kafka.producer(bootstrap, transactional_id=txn_id, linger_ms=1)
    try:
        await asyncio.wait_for(producer.start(), wait_seconds)
        # An empty transaction waits for InitProducerId and sends nothing.
        await asyncio.wait_for(producer.begin_transaction(), wait_seconds)
        await asyncio.wait_for(producer.abort_transaction(), wait_seconds)
    except BaseException:
        await discard(producer)
        raise
    return producer


async def discard(producer: AIOKafkaProducer, wait_seconds: float = 5.0) -> None:
    """Stop a producer that may be fenced or mid-transaction; its open transaction is left
    to the next holder of the id (or the coordinator's timeout) to abort."""
    with contextlib.suppress(Exception):
        await asyncio.wait_for(producer.stop(), wait_seconds)


@dataclass
class Partition:
    """The state a replica holds for one command partition it owns."""

    tp: TopicPartition
    producer: AIOKafkaProducer
    runs: Runs
    next_offset: int


@dataclass
class _Batch:
    """What one transaction has changed so far; applied to the partition only after commit."""

    states: dict[bytes, RunState] = field(default_factory=dict)
    sends: list[asyncio.Future[Any]] = field(default_factory=list)
    tally: Counter[tuple[str, str]] = field(default_factory=Counter)
    emitted: Counter[str] = field(default_factory=Counter)
    confirmed: int = 0
    """`sends[:confirmed]` are covered by `acked`."""
    acked: asyncio.Future[Any] | None = None


class BatchProcessor:
    """Runs one partition's batch of commands as one transaction."""

    def __init__(
        self,
        topics: Topics,
        group_id: str,
        channel: Channel,
        step_timeout: float,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.topics, self.group_id, self.channel = topics, group_id, channel
        self.step_timeout, self.clock = step_timeout, clock

    async def run(self, part: Partition, records: Sequence[ConsumerRecord]) -> int:
        """Process and commit; returns how many commands it committed. Raises on any Kafka
        failure, after which nothing of the batch is visible and the caller re-reads the
        partition's state (a commit that timed out may or may not have happened)."""
        records = [r for r in records if r.offset >= part.next_offset]
        if not records:
            return 0
        started = time.perf_counter()
        batch = _Batch()
        producer = part.producer
        await asyncio.wait_for(producer.begin_transaction(), self.step_timeout)
        wave: list[tuple[ConsumerRecord, Command]] = []
        keys: set[bytes | None] = set()
        for record in records:
            try:
                command: Command = decode_command(record.value or b"")
            except (ValidationError, ValueError, UnicodeDecodeError) as exc:
                batch.tally["undecodable", "dead_lettered"] += 1
                error = describe_validation_error(exc)
                await self._dead_letter(part, record, batch, "decode", error)
                continue
            if record.key in keys:
                await self._wave(part, wave, batch)
                wave, keys = [], set()
            wave.append((record, command))
            keys.add(record.key)
        await self._wave(part, wave, batch)
        changed = {k: s.model_dump_json().encode() for k, s in batch.states.items()}
        for run_key, stored in changed.items():
            batch.sends.append(
                await producer.send(
                    self.topics.executor_runs, stored, key=run_key, partition=part.tp.partition
                )
            )
        await self._wait_acked(batch)
        crash_point("executor.before_commit")
        next_offset = records[-1].offset + 1
        await asyncio.wait_for(
            producer.send_offsets_to_transaction({part.tp: next_offset}, self.group_id),
            self.step_timeout,
        )
        await asyncio.wait_for(producer.commit_transaction(), self.step_timeout)
        crash_point("executor.after_commit")
        part.runs.update(changed)
        part.next_offset = next_offset
        for (kind, outcome), n in batch.tally.items():
            COMMANDS.labels(type=kind, outcome=outcome).inc(n)
        for kind, n in batch.emitted.items():
            EVENTS.labels(type=kind).inc(n)
        TRANSACTION_SECONDS.observe(time.perf_counter() - started)
        return len(records)

    async def _wait_acked(self, batch: _Batch) -> None:
        """Until the broker has every record sent so far. Callers that come while a round
        trip is under way share it, or start one more that also waits for it."""
        if len(batch.sends) > batch.confirmed:
            earlier = [batch.acked] if batch.acked is not None else []
            batch.acked = asyncio.gather(*earlier, *batch.sends[batch.confirmed :])
            batch.confirmed = len(batch.sends)
        if batch.acked is not None:
            await asyncio.wait_for(asyncio.shield(batch.acked), self.step_timeout)

    async def _wave(
        self, part: Partition, wave: list[tuple[ConsumerRecord, Command]], batch: _Batch
    ) -> None:
        """Commands of distinct patients, side by side; the first failure aborts the rest."""
        if not wave:
            return
        if len(wave) == 1:
            await self._one(part, *wave[0], batch)
            return
        try:
            async with asyncio.TaskGroup() as group:
                for record, command in wave:
                    group.create_task(self._one(part, record, command, batch))
        except BaseExceptionGroup as failed:  # the caller handles one failure, as before
            raise failed.exceptions[0] from None

    async def _one(
        self, part: Partition, record: ConsumerRecord, command: Command, batch: _Batch
    ) -> None:
        run_key = str(command.run_id).encode()
        token = run_id_var.set(str(command.run_id))
        started = time.perf_counter()
        handed_over = False

        async def before_delivery(events: Sequence[ev.Event]) -> None:
            nonlocal handed_over
            handed_over = True
            await self._emit(part, record, batch, events)
            await self._wait_acked(batch)  # a fenced producer fails here, before delivering

        try:
            state = batch.states.get(run_key)
            if state is None:
                state = part.runs.get(run_key)
            try:
                outcome: Outcome = await process(
                    state, command, self.channel, self.clock, before_delivery
                )
            except Exception as exc:
                if handed_over:  # events of this command are in the transaction: abort it
                    raise
                # Nothing of this command was written: it is a poison record for the core.
                log.exception("command could not be processed", extra={"command": command.type})
                batch.tally[command.type, "dead_lettered"] += 1
                await self._dead_letter(part, record, batch, "process", type(exc).__name__)
                return
            if outcome.rejection is not None:
                batch.tally[command.type, "rejected"] += 1
                log.info(
                    "command rejected",
                    extra={"command": command.type, "reason": outcome.rejection.reason},
                )
                return
            assert outcome.state is not None
            batch.states[run_key] = outcome.state
            await self._emit(part, record, batch, outcome.remaining)
            batch.tally[command.type, "applied"] += 1
        finally:
            PROCESS_SECONDS.observe(time.perf_counter() - started)
            run_id_var.reset(token)

    async def _emit(
        self, part: Partition, record: ConsumerRecord, batch: _Batch, events: Sequence[ev.Event]
    ) -> None:
        """Events go to the events partition with the command's number, under its key."""
        for e in events:
            envelope = CloudEvent(
                id=event_id(e.run_id, e.seq), type=e.type, source=SOURCE,
                subject=str(e.run_id), time=e.occurred_at,
            )  # fmt: skip
            batch.sends.append(
                await part.producer.send(
                    self.topics.events, e.to_json(), key=record.key,
                    partition=part.tp.partition, headers=envelope.headers(),
                )
            )  # fmt: skip
            batch.emitted[e.type] += 1

    async def _dead_letter(
        self, part: Partition, record: ConsumerRecord, batch: _Batch, stage: str, error: str
    ) -> None:
        headers = dlq_headers(
            list(record.headers or []), topic=record.topic, partition=record.partition,
            offset=record.offset, stage=stage, error=error,
        )  # fmt: skip
        batch.sends.append(
            await part.producer.send(
                self.topics.dlq, record.value, key=record.key,
                partition=part.tp.partition, headers=headers,
            )
        )  # fmt: skip
