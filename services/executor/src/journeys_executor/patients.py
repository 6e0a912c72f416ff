"""The patient table: each patient's kept events on a partition, in memory and in the changelog.

Beside the runs, partition p of the changelog holds, under `patient:<patient key>`, the state
`receive` keeps for each patient of command partition p (receipt ids seen, events kept for
look-back, journeys entered once), written in the same transaction as the events it caused,
so a restarted replica de-duplicates and looks back exactly as the one before it. Erasing the
patient tombstones the record.

When any of the patient's events came sealed, the record keeps their data sealed under the
patient's data key (field `eventData`), beside that key wrapped, as a sealed run's state does.
It is held as the JSON the changelog holds and parsed when a command of the patient needs it.

The patient's guard (`core/guard.py`: the channels without consent, and when the latest
messages went out) is a record of its own, `guard:<patient key>`, so checking it and counting
a message never rewrites (nor re-seals) the kept events. It holds no patient data, so it is
never sealed; erasing the patient tombstones it too.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any, overload
from uuid import UUID

from journeys_contracts.sealed import WrappedDataKey
from journeys_executor.core import PatientEvent, PatientState
from journeys_executor.core.guard import Guard
from journeys_executor.runs import GUARD_PREFIX, PATIENT_PREFIX, data_key
from journeys_executor.sealed_runs import Sealing
from journeys_runtime.keyring import DataKeys
from journeys_runtime.shredding import open_sealed, seal

DATA_FIELD = "eventData"


def patient_record_key(patient_key: str) -> bytes:
    return PATIENT_PREFIX + patient_key.encode()


def patient_json(state: PatientState, sealing: Sealing | None) -> bytes:
    """The changelog value of a patient's state, its events' data sealed when `sealing`."""

    def data(value: dict[str, Any]) -> Any:
        if sealing is None:
            return value
        return seal(sealing.key, sealing.patient_key, DATA_FIELD, value)

    fields: dict[str, Any] = {
        "patientKey": state.patient_key,
        "seen": [[str(r), t.isoformat()] for r, t in state.seen],
        "recent": [_event_fields(e) | {DATA_FIELD: data(e.data)} for e in state.recent],
        "entered": sorted(str(j) for j in state.entered),
    }
    if sealing is not None:
        fields["dataKey"] = sealing.wrapped.model_dump()
    return json.dumps(fields, separators=(",", ":")).encode()


def guard_record_key(patient_key: str) -> bytes:
    return GUARD_PREFIX + patient_key.encode()


def guard_json(guard: Guard) -> bytes | None:
    """The changelog value of a patient's guard; None (a tombstone) when it holds nothing."""
    if not guard.revoked and not guard.sent:
        return None
    fields = {"revoked": sorted(guard.revoked), "sent": [t.isoformat() for t in guard.sent]}
    return json.dumps(fields, separators=(",", ":")).encode()


def guard_from_json(raw: bytes | None) -> Guard:
    if raw is None:
        return Guard()
    fields = json.loads(raw)
    return Guard(
        revoked=frozenset(fields.get("revoked", ())),
        sent=tuple(datetime.fromisoformat(t) for t in fields.get("sent", ())),
    )


def wrapped_key_of(raw: bytes) -> WrappedDataKey | None:
    """The data key a stored patient record is sealed under, if any."""
    wrapped = json.loads(raw).get("dataKey")
    return None if wrapped is None else WrappedDataKey.model_validate(wrapped)


def patient_from_json(raw: bytes, data_keys: DataKeys | None) -> PatientState:
    """A stored patient state, its events' data opened (`ShreddingError` if it does not)."""
    fields = json.loads(raw)
    patient_key = fields["patientKey"]
    wrapped = fields.get("dataKey")
    key = None
    if wrapped is not None:
        key = data_key(data_keys, patient_key, WrappedDataKey.model_validate(wrapped))

    def data(value: Any) -> dict[str, Any]:
        opened = value if key is None else open_sealed(key, patient_key, DATA_FIELD, value)
        return dict(opened)

    return PatientState(
        patient_key,
        seen=tuple((UUID(r), datetime.fromisoformat(t)) for r, t in fields["seen"]),
        recent=tuple(_event(e, data(e[DATA_FIELD])) for e in fields["recent"]),
        entered=frozenset(UUID(j) for j in fields["entered"]),
    )


def _event_fields(event: PatientEvent) -> dict[str, Any]:
    return {
        "receiptId": str(event.receipt_id), "eventId": event.event_id, "type": event.type,
        "occurredAt": event.occurred_at.isoformat(), "receivedAt": event.received_at.isoformat(),
    }  # fmt: skip


def _event(fields: dict[str, Any], data: dict[str, Any]) -> PatientEvent:
    return PatientEvent(
        receipt_id=UUID(fields["receiptId"]), event_id=fields["eventId"], type=fields["type"],
        occurred_at=datetime.fromisoformat(fields["occurredAt"]),
        received_at=datetime.fromisoformat(fields["receivedAt"]), data=data,
    )  # fmt: skip


class LazyRecent(Sequence[PatientEvent]):
    """A patient's kept events, read from the stored record only when a run reaches a
    WAIT_FOR_EVENT node: most commands never look, and opening sealed data costs."""

    def __init__(self, load: Any) -> None:
        self._load = load
        self._events: tuple[PatientEvent, ...] | None = None

    def _all(self) -> tuple[PatientEvent, ...]:
        if self._events is None:
            self._events = self._load()
        return self._events

    @overload
    def __getitem__(self, index: int) -> PatientEvent: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[PatientEvent]: ...
    def __getitem__(self, index: int | slice) -> PatientEvent | Sequence[PatientEvent]:
        return self._all()[index]

    def __len__(self) -> int:
        return len(self._all())

    def __iter__(self) -> Iterator[PatientEvent]:
        return iter(self._all())
