"""The run table: a command partition's runs and journeys, in memory and in a compacted changelog.

Partition p of the changelog holds the runs of command partition p, written in the same
transaction as the events and the consumed offset, so what is committed there is exactly
the state after the committed offset. A replica that takes partition p over reads that
partition with `read_committed` to its end before it processes a single command.

Two kinds of record share the partition:

- a run's state, under its run id. It does not carry the journey definition (up to 1000
  nodes): journeys are immutable, so the journey id names the definition, and the state
  names the journey. A state written by an earlier version still embeds its definition; it
  loads as it is, and its definition enters the table (and is written under its own key with
  the next state of that journey this partition writes).
- a journey's definition, under `journey:<journey id>`, written in the transaction of the
  first state of that journey the partition stores. Definitions are never tombstoned: there
  are as many as journeys, not runs.
- a patient's kept events, under `patient:<patient key>`, and the patient's guard (consent
  and latest messages), under `guard:<patient key>` (see `patients.py`), held here as stored
  and handed out as bytes.

An ended run is kept for a grace window (so a late duplicate command still meets it and is
rejected), then forgotten by a tombstone: `due` names the runs whose window has passed, oldest
end first, and the partition's next transaction writes their tombstones. The index of ended
runs is rebuilt from the states on restore, so a restarted replica forgets on time too.
Memory and restore time then follow active runs plus the runs of one window, not history.

The table also indexes its runs by patient key (the HMAC of the state's patient id under the
deployment secret, as the API keys the patient's commands), so erasing a patient finds every
run of theirs the partition holds, active or in the grace window, without reading them all.
The index is kept as states are stored and forgotten, and rebuilt from the states on restore.

A sealed run's state is stored with its patient data sealed under the patient's data key
(`patient_id`, `patient_context` and a pending message's text, each sealed for the field of the
same wire name: `patientId`, `patientContext`, `message`), beside the data key itself, wrapped
under the deployment's key-encryption key, and the patient key it belongs to. Erasing the
patient tombstones the state; until compaction drops the older records, they are sealed too.
Restoring reads only the clear fields (the stored patient key indexes the run); a state is
opened, through the process's cache of data keys, when a command loads it.
"""

from __future__ import annotations

import heapq
import json
import logging
import time
from collections.abc import Callable, Collection, Mapping
from datetime import datetime
from functools import partial
from typing import Any
from uuid import UUID

from aiokafka import TopicPartition

from journeys_contracts.definition import JourneyDefinition
from journeys_contracts.sealed import WrappedDataKey
from journeys_contracts.statuses import TERMINAL
from journeys_executor.core import RunState
from journeys_executor.metrics import RESTORE_SECONDS, RESTORED_RUNS
from journeys_runtime import kafka
from journeys_runtime.keyring import DataKeys
from journeys_runtime.sealing import from_wire
from journeys_runtime.shredding import DataKey, ShreddingError, open_sealed, seal

log = logging.getLogger(__name__)

JOURNEY_PREFIX = b"journey:"
PATIENT_PREFIX = b"patient:"
GUARD_PREFIX = b"guard:"
PATIENT_RECORD_PREFIXES = (PATIENT_PREFIX, GUARD_PREFIX)
"""Records about a patient rather than a run: kept events, and the guard (`patients.py`)."""


def journey_key(journey_id: UUID) -> bytes:
    """The changelog key of a journey's definition; run keys are bare run ids."""
    return JOURNEY_PREFIX + str(journey_id).encode()


PatientKeyOf = Callable[[str], str]
"""A patient id -> its patient key (`journeys_contracts.keys.patient_key` under the secret)."""

SEALED_STATE_FIELDS = (("patient_id", "patientId"), ("patient_context", "patientContext"))
"""A sealed state's fields that hold patient data, with the field name each is sealed for
(besides `pending_message.message`, sealed for `message`)."""


def data_key(data_keys: DataKeys | None, patient_key: str, wrapped: WrappedDataKey) -> DataKey:
    """The unwrapped data key of a sealed run; `ShreddingError` when it does not unwrap."""
    if data_keys is None:
        raise ShreddingError("no key-encryption keys to open a sealed run with")
    return data_keys.open(patient_key, from_wire(wrapped))


def state_json(state: RunState, data_keys: DataKeys | None) -> bytes:
    """The changelog value of `state`: as it is for an unsealed run; for a sealed one, with
    its patient data sealed and its wrapped data key and patient key beside it."""
    if state.data_key is None or state.patient_key is None:
        return state.model_dump_json().encode()
    patient_key = state.patient_key
    key = data_key(data_keys, patient_key, state.data_key)
    fields = state.model_dump(mode="json")
    for name, sealed_as in SEALED_STATE_FIELDS:
        fields[name] = seal(key, patient_key, sealed_as, fields[name])
    pending = fields.get("pending_message")
    if pending is not None:
        pending["message"] = seal(key, patient_key, "message", pending["message"])
    fields["patient_key"] = patient_key
    fields["data_key"] = state.data_key.model_dump()
    return json.dumps(fields, separators=(",", ":")).encode()


def opened(fields: dict[str, Any], data_keys: DataKeys | None) -> dict[str, Any]:
    """A stored state's fields with its patient data in clear (`fields` is changed); a sealed
    field that does not open raises `ShreddingError`."""
    wrapped = fields.get("data_key")
    if wrapped is None:
        return fields
    patient_key = fields["patient_key"]
    key = data_key(data_keys, patient_key, WrappedDataKey.model_validate(wrapped))
    for name, sealed_as in SEALED_STATE_FIELDS:
        fields[name] = open_sealed(key, patient_key, sealed_as, fields[name])
    pending = fields.get("pending_message")
    if pending is not None:
        pending["message"] = open_sealed(key, patient_key, "message", pending["message"])
    return fields


class Runs:
    """Run states by run id, stored as the JSON the changelog holds and parsed when used, the
    definitions of their journeys, and the run ids of each patient key."""

    def __init__(self, patient_key_of: PatientKeyOf, data_keys: DataKeys | None = None) -> None:
        self._key_of = patient_key_of
        self.data_keys = data_keys
        """Opens sealed states; None in a process that holds no key-encryption keys."""
        self._patients: dict[str, set[bytes]] = {}
        """Patient key -> the keys of the patient's stored runs."""
        self._patient: dict[bytes, str] = {}
        """Run key -> its patient key: what `_patients` must drop when the run is forgotten."""
        self._stored: dict[bytes, bytes] = {}
        self._definitions: dict[UUID, JourneyDefinition] = {}
        self._written: set[UUID] = set()
        """Journeys whose definition has its own record in the changelog."""
        self._ended: dict[bytes, float] = {}
        """Ended runs still stored: when each ended (seconds since the epoch)."""
        self._queue: list[tuple[float, bytes]] = []
        """`_ended` as a heap, oldest end first; an entry `_ended` no longer holds is stale."""
        self._patient_records: dict[bytes, bytes] = {}
        """`patient:<patient key>` and `guard:<patient key>` -> the patient's stored records
        (`patients.py`)."""

    @classmethod
    def restored(
        cls,
        latest: Mapping[bytes, bytes],
        patient_key_of: PatientKeyOf,
        data_keys: DataKeys | None = None,
    ) -> Runs:
        """The table of a changelog partition whose latest value per key is `latest`."""
        runs = cls(patient_key_of, data_keys)
        states = []
        for key, value in latest.items():
            if key.startswith(JOURNEY_PREFIX):
                journey_id = UUID(key[len(JOURNEY_PREFIX) :].decode())
                runs._definitions[journey_id] = JourneyDefinition.model_validate_json(value)
                runs._written.add(journey_id)
            elif key.startswith(PATIENT_RECORD_PREFIXES):
                runs._patient_records[key] = value
            else:
                runs._stored[key] = value
                states.append(key)
        unreadable = 0
        for key in states:
            try:
                runs._restore_state(key)
            except (ValueError, KeyError, TypeError):
                # Kept as stored: a command for this run is dead-lettered (stage `state`) when
                # it comes, instead of one record stopping the whole partition's takeover.
                unreadable += 1
        if unreadable:
            log.warning("run states unreadable at restore", extra={"states": unreadable})
        return runs

    def _restore_state(self, key: bytes) -> None:
        fields = json.loads(self._stored[key])
        sealed_for = fields.get("patient_key")
        self._index(key, lambda: sealed_for or self._key_of(fields["patient_id"]))
        embedded = fields.get("definition")
        if embedded is not None:  # written by a version that kept it in the state
            journey_id = UUID(fields["journey_id"])
            if journey_id not in self._definitions:
                self._definitions[journey_id] = JourneyDefinition.model_validate(embedded)
        if fields.get("status") in TERMINAL:
            self._mark_ended(key, datetime.fromisoformat(fields["updated_at"]).timestamp())

    def __len__(self) -> int:
        return len(self._stored)

    def patient_record(self, record_key: bytes) -> bytes | None:
        """A patient's stored record, by its changelog key (`patient:` or `guard:`)."""
        return self._patient_records.get(record_key)

    @property
    def journeys(self) -> int:
        return len(self._definitions)

    def get(self, run_key: bytes) -> RunState | None:
        raw = self._stored.get(run_key)
        if raw is None:
            return None
        fields = opened(json.loads(raw), self.data_keys)
        if "definition" not in fields:
            fields["definition"] = self._definitions[UUID(fields["journey_id"])]
        return RunState.model_validate(fields)

    def definition_record(self, state: RunState) -> tuple[bytes, bytes] | None:
        """The changelog record of `state`'s journey, when this partition has not written it."""
        if state.journey_id in self._written:
            return None
        return journey_key(state.journey_id), state.definition.model_dump_json().encode()

    def update(
        self, changed: Mapping[bytes, bytes | None], states: Mapping[bytes, RunState]
    ) -> None:
        """What a committed transaction wrote: `changed` records (None forgets a run, as a
        tombstone in the changelog does), with the states of the runs among them."""
        for key, stored in changed.items():
            if key.startswith(JOURNEY_PREFIX):
                self._written.add(UUID(key[len(JOURNEY_PREFIX) :].decode()))
                continue
            if key.startswith(PATIENT_RECORD_PREFIXES):
                if stored is None:
                    self._patient_records.pop(key, None)
                else:
                    self._patient_records[key] = stored
                continue
            self._ended.pop(key, None)
            if stored is None:
                self._stored.pop(key, None)
                self._unindex(key)
                continue
            self._stored[key] = stored
            state = states.get(key)
            if state is not None:
                self._index(key, partial(self.key_of_state, state))
                self._definitions.setdefault(state.journey_id, state.definition)
                if state.ended:
                    self._mark_ended(key, state.updated_at.timestamp())

    def patient_key_of(self, patient_id: str) -> str:
        return self._key_of(patient_id)

    def key_of_state(self, state: RunState) -> str:
        """The patient key of a run: a sealed run's own, else computed from its patient id."""
        return state.patient_key or self._key_of(state.patient_id)

    def of_patient(self, patient_key: str) -> list[bytes]:
        """The keys of the stored runs of `patient_key`, ended or not, sorted."""
        return sorted(self._patients.get(patient_key, ()))

    def _index(self, run_key: bytes, patient_key_of: Callable[[], str]) -> None:
        if run_key in self._patient:  # a run's patient never changes: hash it once
            return
        patient_key = patient_key_of()
        self._patient[run_key] = patient_key
        self._patients.setdefault(patient_key, set()).add(run_key)

    def _unindex(self, run_key: bytes) -> None:
        patient_key = self._patient.pop(run_key, None)
        if patient_key is None:
            return
        keys = self._patients[patient_key]
        keys.discard(run_key)
        if not keys:
            del self._patients[patient_key]

    def has_due(self, before: float) -> bool:
        """Whether a run that ended at or before `before` is still stored."""
        self._drop_stale()
        return bool(self._queue) and self._queue[0][0] <= before

    def due(self, before: float, limit: int) -> list[bytes]:
        """Up to `limit` runs that ended at or before `before`, oldest end first, taken off
        the queue: the caller tombstones them. (A transaction that fails discards the whole
        table, so none is lost from a table still in use.)"""
        keys: list[bytes] = []
        while len(keys) < limit and self.has_due(before):
            keys.append(heapq.heappop(self._queue)[1])
        return keys

    def _mark_ended(self, key: bytes, at: float) -> None:
        self._ended[key] = at
        heapq.heappush(self._queue, (at, key))

    def _drop_stale(self) -> None:
        queue = self._queue
        while queue and self._ended.get(queue[0][1]) != queue[0][0]:
            heapq.heappop(queue)


async def restore(
    bootstrap: str,
    topic: str,
    partitions: Collection[int],
    patient_key_of: PatientKeyOf,
    data_keys: DataKeys | None = None,
) -> dict[int, Runs]:
    """Read the given changelog partitions from the beginning to their last stable offset.

    The caller has already fenced the partitions' previous transactional producers, so no
    transaction is open on them and the last stable offset is the end.
    """
    started = time.perf_counter()
    tps = [TopicPartition(topic, p) for p in sorted(partitions)]
    tables: dict[int, dict[bytes, bytes]] = {tp.partition: {} for tp in tps}
    if not tps:
        return {}
    reader = kafka.consumer(bootstrap, None, max_poll_records=5000, fetch_max_wait_ms=10)
    await reader.start()
    try:
        reader.assign(tps)
        await reader.seek_to_beginning(*tps)
        ends = await reader.end_offsets(tps)
        remaining = {tp for tp in tps if ends[tp] > 0}
        while remaining:
            batch = await reader.getmany(*remaining, timeout_ms=200)
            for tp, records in batch.items():
                table = tables[tp.partition]
                for record in records:
                    if record.key is None:
                        continue
                    if record.value is None:
                        table.pop(record.key, None)
                    else:
                        table[record.key] = record.value
            for tp in list(remaining):
                if await reader.position(tp) >= ends[tp]:
                    remaining.discard(tp)
    finally:
        await reader.stop()
    runs = {p: Runs.restored(t, patient_key_of, data_keys) for p, t in tables.items()}
    restored = sum(len(r) for r in runs.values())
    RESTORED_RUNS.inc(restored)
    RESTORE_SECONDS.observe(time.perf_counter() - started)
    log.info(
        "run table restored",
        extra={"partitions": sorted(tables), "runs": restored,
               "journeys": sum(r.journeys for r in runs.values()),
               "seconds": round(time.perf_counter() - started, 3)},
    )  # fmt: skip
    return runs
