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

An `ErasePatient` is one such command, in order with the patient's others: in its
transaction the patient's runs that have not ended are cancelled, the states of all the
patient's runs are tombstoned, and `PatientErased` lists them (on both events topics).

The patient's guard (consent per channel, and when the latest messages went out) is read
before every command of the patient and handed to the core, which checks it before any
message goes out; what the command's messages make of it, and a `SetConsent`, are written to
the changelog in the same transaction, so a message never slips past a STOP or the cap.

A *sealed* run, started by a `StartRunSealed`, carries its patient's data key (wrapped) in its
state. Its commands are opened into the v1 commands the core decides (a sealed command that
does not open is poison), and each of its events goes to the v2 events topic sealed, and,
while `emit_events_v1`, also to the v1 topic in clear marked `sealedTwin`, in the same
transaction. An unsealed run publishes on v1 only, as it always has. A dead-lettered start
never takes its wrapped data key to the DLQ: the key must live only where erasure deletes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.structs import ConsumerRecord

from journeys_contracts import events as ev
from journeys_contracts.commands import (
    Command,
    ErasePatient,
    RecordPatientEvent,
    RecordPatientEventSealed,
    RetryMessage,
    RunCommand,
    SetConsent,
    decode_command,
)
from journeys_contracts.deliveries import (
    DeliveryRequested,
    DeliveryRequestedSealed,
    delivery_id,
    delivery_request,
)
from journeys_contracts.envelope import CloudEvent, Headers, event_id
from journeys_contracts.wire import UnknownRecordType
from journeys_executor.core import (
    EventPolicy,
    PatientState,
    Rejection,
    RunState,
    TriggerRun,
    erase,
    fail,
    receive,
)
from journeys_executor.core.decide import DEFAULT_POLICY, Input, Policy
from journeys_executor.core.guard import NO_GUARD, Guard
from journeys_executor.metrics import (
    COMMANDS,
    EVENTS,
    FORGOTTEN_RUNS,
    OVERSIZED_RECORDS,
    PATIENT_EVENTS,
    PROCESS_SECONDS,
    TRANSACTION_SECONDS,
    UNKNOWN_RECORDS,
)
from journeys_executor.patients import (
    LazyRecent,
    guard_from_json,
    guard_json,
    guard_record_key,
    patient_from_json,
    patient_json,
    patient_record_key,
    wrapped_key_of,
)
from journeys_executor.processing import process
from journeys_executor.runs import Runs, data_key, state_json
from journeys_executor.sealed_runs import (
    Sealing,
    opened,
    opened_event,
    sealed,
    sealed_envelope,
    sealing_of,
    unopenable,
)
from journeys_executor.triggers import TriggerIndex
from journeys_runtime import kafka
from journeys_runtime.crash import crash_point
from journeys_runtime.dlq import (
    DATA_KEY_FIELD,
    STRIPPED_HEADER,
    describe_validation_error,
    dlq_headers,
    without_data_key,
)
from journeys_runtime.kafka import RecordTooLargeError, check_record_size
from journeys_runtime.keyring import DataKeys
from journeys_runtime.logs import run_id_var
from journeys_runtime.sealing import seal_delivery, seal_event
from journeys_runtime.topics import Topics

log = logging.getLogger(__name__)

SOURCE = "/journeys/executor"

SWEEP_MAX_TOMBSTONES = 2000
"""Most ended runs one transaction forgets: a window's worth of runs ending at once is spread
over several transactions instead of one that outlasts its timeouts."""

INFRASTRUCTURE = (KafkaError, TimeoutError, OSError)
"""Errors of the broker or the network: they abort the transaction and the partition is read
again. Any other error while processing one command is that command's own: its run fails."""


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
    stored: dict[bytes, bytes | None] = field(default_factory=dict)
    """The changelog records: each run in `states` (None forgets the run, a tombstone) and the
    definition of each journey the partition's changelog did not hold yet."""
    polled_by: float = field(default_factory=time.monotonic)
    """A moment (`time.monotonic()`) after the batch's records were read from Kafka."""
    patients: dict[str, PatientState | None] = field(default_factory=dict)
    """Patient states this transaction changed, by patient key (None: erased)."""
    guards: dict[str, Guard] = field(default_factory=dict)
    """Patient guards this transaction changed, by patient key."""
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
        step_timeout: float,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        ended_run_grace: float = 3600.0,
        *,
        data_keys: DataKeys | None = None,
        emit_events_v1: bool = True,
        triggers: TriggerIndex | None = None,
        event_policy: EventPolicy | None = None,
        trigger_wait_seconds: float = 5.0,
        policy: Policy = DEFAULT_POLICY,
    ) -> None:
        self.topics, self.group_id = topics, group_id
        self.step_timeout, self.clock = step_timeout, clock
        self.ended_run_grace = ended_run_grace
        self.data_keys = data_keys
        """Unwraps sealed runs' data keys; without it, a sealed command is poison."""
        self.emit_events_v1 = emit_events_v1
        self.triggers = triggers
        """The journeys with triggers; without it, patient events only resume and exit runs."""
        self.event_policy = event_policy or EventPolicy()
        self.trigger_wait_seconds = trigger_wait_seconds
        self.policy = policy
        """The deployment's rules for messages (quiet hours, the default time zone)."""

    def sweep_due(self, part: Partition) -> bool:
        """Whether a run of `part` ended more than the grace window ago and is still stored."""
        return part.runs.has_due(self._forget_before())

    def _forget_before(self) -> float:
        return self.clock().timestamp() - self.ended_run_grace

    async def run(self, part: Partition, records: Sequence[ConsumerRecord]) -> int:
        """Process and commit; returns how many commands it committed. Raises on any Kafka
        failure, after which nothing of the batch is visible and the caller re-reads the
        partition's state (a commit that timed out may or may not have happened).

        The transaction also forgets the partition's runs whose grace window has passed (their
        tombstones); with no records, it does only that, and the offset stays where it is."""
        records = [r for r in records if r.offset >= part.next_offset]
        if not records and not self.sweep_due(part):
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
            except UnknownRecordType:  # a newer version's command: not poison, not ours yet
                UNKNOWN_RECORDS.labels(kind="command_type").inc()
                batch.tally["unknown", "skipped"] += 1
                log.info("command of a type this version does not know skipped",
                         extra={"offset": record.offset})  # fmt: skip
                continue
            except Exception as exc:  # whatever it is, the record is poison
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
        changed = batch.stored
        # A run this batch changed is not forgotten now: its new state decides.
        forgotten = [
            run_key
            for run_key in part.runs.due(self._forget_before(), SWEEP_MAX_TOMBSTONES)
            if run_key not in changed
        ]
        changed.update(dict.fromkeys(forgotten))
        for run_key, stored in changed.items():
            batch.sends.append(
                await producer.send(
                    self.topics.executor_runs, stored, key=run_key, partition=part.tp.partition
                )
            )
        await self._wait_acked(batch)
        crash_point("executor.before_commit")
        next_offset = records[-1].offset + 1 if records else part.next_offset
        if records:
            await asyncio.wait_for(
                producer.send_offsets_to_transaction({part.tp: next_offset}, self.group_id),
                self.step_timeout,
            )
        await asyncio.wait_for(producer.commit_transaction(), self.step_timeout)
        crash_point("executor.after_commit")
        part.runs.update(changed, batch.states)
        part.next_offset = next_offset
        FORGOTTEN_RUNS.inc(len(forgotten))
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
            await self._command(part, *wave[0], batch)
            return
        try:
            async with asyncio.TaskGroup() as group:
                for record, command in wave:
                    group.create_task(self._command(part, record, command, batch))
        except BaseExceptionGroup as failed:  # the caller handles one failure, as before
            raise failed.exceptions[0] from None

    async def _command(
        self, part: Partition, record: ConsumerRecord, command: Command, batch: _Batch
    ) -> None:
        if isinstance(command, ErasePatient):
            await self._erase(part, record, command, batch)
        elif isinstance(command, SetConsent):
            self._set_consent(part, command, batch)
        elif isinstance(command, RetryMessage):
            await self._retry_message(part, record, command, batch)
        elif isinstance(command, RecordPatientEvent | RecordPatientEventSealed):
            await self._patient_event(part, record, command, batch)
        else:
            await self._one(part, record, command, batch)

    async def _erase(
        self, part: Partition, record: ConsumerRecord, command: ErasePatient, batch: _Batch
    ) -> None:
        """Cancel the patient's runs that have not ended, tombstone all of theirs, and say so.

        The runs are the table's runs of the patient key and those this batch stored before
        (a start earlier in the batch). Either every event goes into the transaction, then
        every tombstone, or (a record too large: a patient with tens of thousands of runs)
        none, and the command is dead-lettered with the reason.
        """
        started = time.perf_counter()
        patient_key = command.patient_key
        try:
            states = self._patient_runs(part, batch, patient_key)
            erasure = erase(states, command, self.clock())
            ready = [
                out
                for decision in erasure.cancellations
                for out in self._records(
                    record, decision, sealing_of(decision.state, self.data_keys)
                )
            ]
            ready += self._records(record, [erasure.erased], None)
            await self._send(part, batch, ready)
        except INFRASTRUCTURE:
            raise
        except RecordTooLargeError as exc:
            batch.tally[command.type, "failed"] += 1
            await self._dead_letter(part, record, batch, "size", f"record too large: {exc}")
            return
        except Exception as exc:  # the erasure's own failure (a state this version cannot
            # read, a core bug): dead-lettered with its type, never a crash loop for the partition
            log.warning("erasure failed", extra={"error": type(exc).__name__})
            batch.tally[command.type, "failed"] += 1
            await self._dead_letter(part, record, batch, "process", type(exc).__name__)
            return
        for state in states:
            run_key = str(state.run_id).encode()
            batch.states.pop(run_key, None)
            batch.stored[run_key] = None
        batch.patients[patient_key] = None
        batch.stored[patient_record_key(patient_key)] = None
        self._keep_guard(batch, patient_key, NO_GUARD)
        if self.data_keys is not None:
            # Nothing of the patient's is opened again from memory; a key still in a command
            # not yet processed is unwrapped again, until the API's erasure deletes its source.
            self.data_keys.forget_patient(patient_key)
        batch.tally[command.type, "applied"] += 1
        PROCESS_SECONDS.observe(time.perf_counter() - started)
        log.info(
            "patient erased",
            extra={"erasure_id": str(command.erasure_id), "runs": len(states),
                   "cancelled": len(erasure.cancellations)},
        )  # fmt: skip

    def _set_consent(self, part: Partition, command: SetConsent, batch: _Batch) -> None:
        """Grant or revoke consent to the channels named; every later message of the patient's
        (this transaction's included) is checked against it."""
        guard = self._guard(part, batch, command.patient_key)
        self._keep_guard(batch, command.patient_key, guard.with_consent(command.channels))
        batch.tally[command.type, "applied"] += 1
        log.info(
            "consent set",
            extra={"consent_id": str(command.consent_id), "source": command.source,
                   "granted": sorted(c for c, on in command.channels.items() if on),
                   "revoked": sorted(c for c, on in command.channels.items() if not on)},
        )  # fmt: skip

    async def _retry_message(
        self, part: Partition, record: ConsumerRecord, command: RetryMessage, batch: _Batch
    ) -> None:
        """An operator's retry of a message given up: its delivery request goes to the
        deliveries topic in this transaction if the patient still consents to its channel;
        else the command is dead-lettered (stage `consent`), without its wrapped data key."""
        request = command.request
        if {request.patient_key, (record.key or b"").decode(errors="replace")} != {
            command.patient_key
        }:  # never another patient's consent checked, or their partition written
            batch.tally[command.type, "dead_lettered"] += 1
            await self._dead_letter(part, record, batch, "decode", "patient keys disagree",
                                    _without_request_key(command))  # fmt: skip
            return
        channel = request.channel or self.policy.default_channel
        if not self._guard(part, batch, command.patient_key).consents(channel):
            batch.tally[command.type, "suppressed"] += 1
            log.info("retry suppressed: no consent",
                     extra={"message_id": str(request.message_id), "channel": channel})  # fmt: skip
            await self._dead_letter(part, record, batch, "consent", f"no consent to {channel}",
                                    _without_request_key(command))  # fmt: skip
            return
        envelope = CloudEvent(
            id=delivery_id(request.message_id, request.attempt), type=request.type,
            source=SOURCE, subject=str(request.run_id), time=command.requested_at,
        )  # fmt: skip
        try:
            ready = _ready(self.topics.deliveries, record, request.type, request.to_json(),
                           envelope)  # fmt: skip
        except RecordTooLargeError as exc:  # it fitted in the command: only if limits changed
            batch.tally[command.type, "dead_lettered"] += 1
            await self._dead_letter(part, record, batch, "size", f"record too large: {exc}",
                                    _without_request_key(command))  # fmt: skip
            return
        await self._send(part, batch, [ready])
        batch.tally[command.type, "applied"] += 1

    def _guard(self, part: Partition, batch: _Batch, patient_key: str | None) -> Guard:
        if patient_key is None:
            return NO_GUARD
        if patient_key in batch.guards:
            return batch.guards[patient_key]
        return guard_from_json(part.runs.patient_record(guard_record_key(patient_key)))

    @staticmethod
    def _keep_guard(batch: _Batch, patient_key: str, guard: Guard) -> None:
        batch.guards[patient_key] = guard
        batch.stored[guard_record_key(patient_key)] = guard_json(guard)

    async def _one(
        self, part: Partition, record: ConsumerRecord, command: RunCommand, batch: _Batch
    ) -> None:
        run_key = str(command.run_id).encode()
        kind = command.type  # counted as it came, sealed or not
        try:
            state = self._state(part, batch, run_key)
        except Exception as exc:  # a stored state this version cannot read
            log.warning(
                "run state unreadable", extra={"command": command.type, "error": type(exc).__name__}
            )
            batch.tally[kind, "dead_lettered"] += 1
            await self._dead_letter(part, record, batch, "state", type(exc).__name__)
            return
        try:
            command, sealing = opened(record.key, command, state, self.data_keys)
        except Exception as exc:  # poison: a key or a field that does not open, or worse
            error = unopenable(exc)
            log.warning(
                "sealed command does not open", extra={"command": kind, "error": type(exc).__name__}
            )
            batch.tally[kind, "dead_lettered"] += 1
            await self._dead_letter(part, record, batch, "unseal", error)
            return
        await self._step(part, record, command, state, sealing, batch, kind)

    async def _step(
        self,
        part: Partition,
        record: ConsumerRecord,
        command: Input,
        state: RunState | None,
        sealing: Sealing | None,
        batch: _Batch,
        kind: str,
    ) -> None:
        """Decide `command` for its run (in `state`) and put the events, the delivery requests
        of the messages it asks for, and the new state into the transaction; a failure of its
        own fails the run."""
        run_key = str(command.run_id).encode()
        token = run_id_var.set(str(command.run_id))
        started = time.perf_counter()
        try:
            try:
                recent = self._recent(part, batch, record.key)
                patient_key = None if record.key is None else record.key.decode(errors="replace")
                guard = self._guard(part, batch, patient_key)
                outcome = process(state, command, self.clock, recent, self.policy, guard)
                if outcome.rejection is not None:
                    batch.tally[kind, "rejected"] += 1
                    log.info(
                        "command rejected",
                        extra={"command": kind, "reason": outcome.rejection.reason},
                    )
                    return
                new_state = sealed(outcome.state, sealing)
                assert new_state is not None
                stored = self._serialize(run_key, new_state)
                self._journey(part, batch, new_state)
                await self._emit(part, record, batch, outcome.events, sealing, outcome.state)
            except INFRASTRUCTURE:
                raise
            except Exception as exc:  # this command's failure, not the partition's
                await self._fail(part, record, command, batch, state, exc, sealing)
                return
            batch.states[run_key] = new_state
            batch.stored[run_key] = stored
            if patient_key is not None and outcome.guard != guard:
                self._keep_guard(batch, patient_key, outcome.guard)
            batch.tally[kind, "applied"] += 1
        finally:
            PROCESS_SECONDS.observe(time.perf_counter() - started)
            run_id_var.reset(token)

    def _recent(self, part: Partition, batch: _Batch, record_key: bytes | None) -> LazyRecent:
        """The kept events of the patient a command is keyed by, read if a wait looks back;
        those older than the policy keeps are left out now, not only at the patient's next
        event, so no wait looks back further than `EXECUTOR_EVENTS_KEPT_SECONDS`."""

        def load() -> tuple[Any, ...]:
            if record_key is None:
                return ()
            patient = self._patient(part, batch, record_key.decode(errors="replace"))
            if patient is None:
                return ()
            return patient.pruned(self.clock(), self.event_policy).recent

        return LazyRecent(load)

    def _patient(self, part: Partition, batch: _Batch, patient_key: str) -> PatientState | None:
        if patient_key in batch.patients:
            return batch.patients[patient_key]
        raw = part.runs.patient_record(patient_record_key(patient_key))
        return None if raw is None else patient_from_json(raw, self.data_keys)

    def _patient_sealing(
        self, part: Partition, batch: _Batch, patient_key: str, sealing: Sealing | None
    ) -> Sealing | None:
        """How the patient's record is sealed: under the event's key, else as it was stored."""
        if sealing is not None:
            return sealing
        key = patient_record_key(patient_key)
        raw = batch.stored.get(key) if key in batch.stored else part.runs.patient_record(key)
        wrapped = None if raw is None else wrapped_key_of(raw)
        if wrapped is None:
            return None
        return Sealing(patient_key, wrapped, data_key(self.data_keys, patient_key, wrapped))

    async def _patient_event(
        self,
        part: Partition,
        record: ConsumerRecord,
        command: RecordPatientEvent | RecordPatientEventSealed,
        batch: _Batch,
    ) -> None:
        """Keep the event for the patient, then exit, resume and start the runs it asks for,
        each as a command of its own run (in order: exits, matches, starts). A repeat of an
        event the patient's state remembers does nothing."""
        kind = command.type
        try:
            event, patient_id, sealing = opened_event(
                record.key, command, part.runs.patient_key_of, self.data_keys
            )
        except Exception as exc:  # poison: a key or a field that does not open, or worse
            batch.tally[kind, "dead_lettered"] += 1
            await self._dead_letter(part, record, batch, "unseal", unopenable(exc))
            return
        patient_key = command.patient_key
        if self.triggers is not None:
            await self.triggers.caught_up(batch.polled_by, self.trigger_wait_seconds)
        try:
            patient = self._patient(part, batch, patient_key)
            states = self._patient_runs(part, batch, patient_key)
            journeys = self.triggers.journeys() if self.triggers is not None else []
            reception = receive(
                patient, patient_key, patient_id, event, states, journeys, self.clock(),
                self.event_policy,
            )  # fmt: skip
            if reception.duplicate:
                batch.tally[kind, "duplicate"] += 1
                PATIENT_EVENTS.labels(outcome="duplicate").inc()
                return
            stored_as = self._patient_sealing(part, batch, patient_key, sealing)
            kept, stored = _fitting(reception.patient, stored_as, record.key)
        except INFRASTRUCTURE:
            raise
        except Exception as exc:  # the event's own failure: dead-lettered, nothing emitted
            log.warning("patient event failed", extra={"error": type(exc).__name__})
            batch.tally[kind, "failed"] += 1
            await self._dead_letter(part, record, batch, "process", type(exc).__name__)
            return
        batch.patients[patient_key] = kept
        batch.stored[patient_record_key(patient_key)] = stored
        for step in reception.inputs:
            # As the steps before it left it: an exit and a match never name one run, but the
            # state is read again all the same. A run a trigger starts is sealed as its event.
            state = self._state(part, batch, str(step.run_id).encode())
            run_sealing = (
                sealing if isinstance(step, TriggerRun) else sealing_of(state, self.data_keys)
            )
            await self._step(part, record, step, state, run_sealing, batch, kind)
        batch.tally[kind, "applied"] += 1
        PATIENT_EVENTS.labels(outcome="applied").inc()

    def _patient_runs(self, part: Partition, batch: _Batch, patient_key: str) -> list[RunState]:
        """The patient's runs: the table's, and those this batch stored before (a start
        earlier in the batch), as this batch left them."""
        run_keys = set(part.runs.of_patient(patient_key))
        run_keys.update(
            key
            for key, state in batch.states.items()
            if part.runs.key_of_state(state) == patient_key
        )
        return [s for s in (self._state(part, batch, k) for k in run_keys) if s is not None]

    @staticmethod
    def _state(part: Partition, batch: _Batch, run_key: bytes) -> RunState | None:
        if run_key in batch.states:
            return batch.states[run_key]
        if run_key in batch.stored:  # tombstoned by an erasure earlier in the batch
            return None
        return part.runs.get(run_key)

    def _serialize(self, run_key: bytes, state: RunState) -> bytes:
        """The changelog value of `state`; `RecordTooLargeError` if it can never be stored."""
        stored = state_json(state, self.data_keys)
        try:
            check_record_size("run state", run_key, stored)
        except RecordTooLargeError:
            OVERSIZED_RECORDS.labels(record="run_state").inc()
            raise
        return stored

    @staticmethod
    def _journey(part: Partition, batch: _Batch, state: RunState) -> None:
        """The journey's definition joins the transaction when the partition has not written it:
        a stored state names its journey, and the journey's record is what it loads with."""
        record = part.runs.definition_record(state)
        if record is None or record[0] in batch.stored:
            return
        key, value = record
        try:
            check_record_size("journey definition", key, value)
        except RecordTooLargeError:
            OVERSIZED_RECORDS.labels(record="journey_definition").inc()
            raise
        batch.stored[key] = value

    async def _fail(
        self,
        part: Partition,
        record: ConsumerRecord,
        command: Input,
        batch: _Batch,
        state: RunState | None,
        exc: Exception,
        sealing: Sealing | None,
    ) -> None:
        """The run of a command that could not be carried out ends failed, from `state`, and
        the command goes to the DLQ with the reason.

        Only the error's type is kept, in logs, events and headers: its text may quote
        patient data. A record too large to store is named with its size and the limit.
        """
        if isinstance(exc, RecordTooLargeError):
            stage, error = "size", f"record too large: {exc}"
        else:
            stage, error = "process", type(exc).__name__
        reason = error if stage == "size" else f"executor error: {error}"
        log.warning("command failed its run", extra={"command": command.type, "stage": stage,
                                                    "error": type(exc).__name__})  # fmt: skip
        try:
            await self._record_failure(part, record, command, batch, state, reason, sealing)
        except INFRASTRUCTURE:
            raise
        except Exception as failure:  # failing the run failed too: the DLQ keeps the command
            log.warning(
                "run could not be failed",
                extra={"command": command.type, "error": type(failure).__name__},
            )
        batch.tally[command.type, "failed"] += 1
        await self._dead_letter(part, record, batch, stage, error)

    async def _record_failure(
        self,
        part: Partition,
        record: ConsumerRecord,
        command: Input,
        batch: _Batch,
        state: RunState | None,
        reason: str,
        sealing: Sealing | None,
    ) -> None:
        now = self.clock()
        decision = fail(state, command, now, reason)
        if isinstance(decision, Rejection):  # no run, or one that has ended: the DLQ only
            return
        run_key = str(command.run_id).encode()
        stored: bytes | None = None
        failed = sealed(decision.state, sealing)
        try:
            if failed is not None:
                stored = self._serialize(run_key, failed)
                self._journey(part, batch, failed)
            await self._emit(part, record, batch, decision, sealing)
        except RecordTooLargeError:
            if state is None:  # its start is what cannot be recorded: the failure stands alone
                decision = fail(state, command, now, reason, record_start=False)
                assert not isinstance(decision, Rejection)
                failed = None
            stored = None  # an ended run too large to store is forgotten (a tombstone)
            await self._emit(part, record, batch, decision, sealing)
        if failed is not None:
            batch.states[run_key] = failed
            batch.stored[run_key] = stored

    async def _emit(
        self,
        part: Partition,
        record: ConsumerRecord,
        batch: _Batch,
        events: Sequence[ev.Event],
        sealing: Sealing | None,
        state: RunState | None = None,
    ) -> None:
        """Events go to the events partitions with the command's number, under its key. All
        of them are checked before the first is sent: either all go, or `RecordTooLargeError`.
        `state` (the run after them) addresses the messages they request."""
        await self._send(part, batch, self._records(record, events, sealing, state))

    def _records(
        self,
        record: ConsumerRecord,
        events: Sequence[ev.Event],
        sealing: Sealing | None,
        state: RunState | None = None,
    ) -> list[_Ready]:
        """The records publishing `events`, each checked against the size limit as it will be
        sent: a sealed run's on v2 sealed (and on v1 as twins, while `emit_events_v1`), an
        unsealed run's on v1, an erasure on both. Each requested message also gets its delivery
        request, for the delivery service."""
        ready: list[_Ready] = []
        for e in events:
            envelope = _envelope(e)
            if isinstance(e, ev.MessageRequested):
                ready.append(self._delivery_request(record, e, sealing, state))
            if isinstance(e, ev.PatientErased):
                ready.append(_ready(self.topics.events, record, e.type, e.to_json(), envelope))
                ready.append(_ready(self.topics.sealed_events, record, e.type, e.to_json(),
                                    sealed_envelope(envelope, e.type)))  # fmt: skip
            elif sealing is None:
                ready.append(_ready(self.topics.events, record, e.type, e.to_json(), envelope))
            else:
                v2 = seal_event(e, sealing.key, sealing.patient_key)
                ready.append(_ready(self.topics.sealed_events, record, v2.type, v2.to_json(),
                                    sealed_envelope(envelope, v2.type)))  # fmt: skip
                if self.emit_events_v1:
                    twin = e.model_copy(update={"sealed_twin": True})
                    ready.append(
                        _ready(self.topics.events, record, e.type, twin.to_json(), envelope)
                    )
        return ready

    def _delivery_request(
        self,
        record: ConsumerRecord,
        event: ev.MessageRequested,
        sealing: Sealing | None,
        state: RunState | None,
    ) -> _Ready:
        """The work order of one message: what, to whom (the run's context's `phone` and
        `email`), by which channel, with which subject (`delivery_request`)."""
        request = delivery_request(
            message_id=event.message_id, run_id=event.run_id, journey_id=event.journey_id,
            node_id=event.node_id, patient_key=(record.key or b"").decode(),
            patient_id=event.patient_id, channel=event.channel, message=event.message,
            attempt=event.attempt or 1, requested_at=event.occurred_at,
            context=state.patient_context if state is not None else {},
            definition=state.definition if state is not None else None,
        )  # fmt: skip
        sent: DeliveryRequested | DeliveryRequestedSealed = request
        if sealing is not None:
            sent = seal_delivery(request, sealing.key, sealing.wrapped)
        value, kind = sent.to_json(), sent.type
        envelope = CloudEvent(
            id=delivery_id(request.message_id, request.attempt), type=kind, source=SOURCE,
            subject=str(request.run_id), time=request.requested_at,
        )  # fmt: skip
        return _ready(self.topics.deliveries, record, kind, value, envelope)

    async def _send(self, part: Partition, batch: _Batch, ready: Sequence[_Ready]) -> None:
        for topic, key, kind, value, headers in ready:
            batch.sends.append(
                await part.producer.send(
                    topic, value, key=key, partition=part.tp.partition, headers=headers
                )
            )
            batch.emitted[kind] += 1

    async def _dead_letter(
        self,
        part: Partition,
        record: ConsumerRecord,
        batch: _Batch,
        stage: str,
        error: str,
        parked: bytes | None = None,
    ) -> None:
        """The command, as it came (or `parked`, a copy of it without what must not outlive an
        erasure), with where and why it failed in headers. A value that would not fit beside
        those headers is left out, and a header says so."""
        headers = dlq_headers(
            list(record.headers or []), topic=record.topic, partition=record.partition,
            offset=record.offset, stage=stage, error=error,
        )  # fmt: skip
        value, stripped = without_data_key(record.value if parked is None else parked)
        if stripped:
            headers.append((STRIPPED_HEADER, DATA_KEY_FIELD.encode()))
        try:
            check_record_size("dead letter", record.key, value, headers)
        except RecordTooLargeError as exc:
            OVERSIZED_RECORDS.labels(record="dead_letter").inc()
            value = b""
            headers.append(("dlq_value_omitted", f"record too large: {exc}".encode()))
        batch.sends.append(
            await part.producer.send(
                self.topics.dlq, value, key=record.key,
                partition=part.tp.partition, headers=headers,
            )
        )  # fmt: skip


def _without_request_key(command: RetryMessage) -> bytes:
    """A retry as the DLQ may keep it: its request's wrapped data key left out, so no copy
    outlives the key's deletion (erasure) with a way back to the patient's data."""
    parked = json.loads(command.to_json())
    parked["request"].pop(DATA_KEY_FIELD, None)
    return json.dumps(parked, separators=(",", ":")).encode()


def _fitting(
    patient: PatientState, sealing: Sealing | None, key: bytes | None
) -> tuple[PatientState, bytes]:
    """The patient's state and its changelog value, its oldest kept events dropped until the
    record fits the size limit: events with large data must not make every later event of
    the patient fail. `RecordTooLargeError` if even none kept cannot fit."""
    while True:
        stored = patient_json(patient, sealing)
        try:
            check_record_size("patient state", key, stored)
        except RecordTooLargeError:
            if not patient.recent:
                OVERSIZED_RECORDS.labels(record="patient_state").inc()
                raise
            patient = replace(patient, recent=patient.recent[1:])
            continue
        return patient, stored


def _envelope(event: ev.Event) -> CloudEvent:
    """A run event is named by its run and seq; a patient's erasure by the erasure id."""
    if isinstance(event, ev.PatientErased):
        return CloudEvent(
            id=ev.erasure_event_id(event.erasure_id), type=event.type, source=SOURCE,
            subject=str(event.erasure_id), time=event.erased_at,
        )  # fmt: skip
    return CloudEvent(
        id=event_id(event.run_id, event.seq), type=event.type, source=SOURCE,
        subject=str(event.run_id), time=event.occurred_at,
    )  # fmt: skip


_Ready = tuple[str, bytes | None, str, bytes, Headers]
"""A record ready to send: topic, key, event type, value, headers."""


def _ready(
    topic: str, record: ConsumerRecord, kind: str, value: bytes, envelope: CloudEvent
) -> _Ready:
    headers = envelope.headers()
    try:
        check_record_size(kind, record.key, value, headers)
    except RecordTooLargeError:
        OVERSIZED_RECORDS.labels(record="event").inc()
        raise
    return topic, record.key, kind, value, headers
