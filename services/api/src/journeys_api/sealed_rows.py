"""Read-model rows of sealed runs, opened with their patient's data key for the answers.

A sealed run's row has `patient_id` NULL, its patient id in `patient_id_sealed`, its context
and failure reason sealed in `patient_context` and `error_sealed`, and its timeline holds the
`.v2` events as the projector received them. Answers show them as an unsealed run's: the same
HTTP shape, the events as their `.v1` twins. A row whose key is gone (the patient was erased,
the projector has not deleted the row yet) is gone for the answers too.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from journeys_api.errors import SealingFaultError
from journeys_contracts.sealed import clear_type
from journeys_runtime.sealing import open_fields
from journeys_runtime.shredding import DataKey, ShreddingError, kid_of, open_sealed

Row = dict[str, Any]


def is_sealed(row: Row) -> bool:
    return row["patient_id"] is None


def was_sealed(row: Row) -> bool:
    """Whether a row, as read or as `open_run` opened it, is a sealed run's."""
    return row.get("patient_id_sealed") is not None


def sealed_under(row: Row, key: DataKey) -> bool:
    """Whether `key` sealed a sealed run's row (as read or opened): a key the patient was
    given after an erasure did not."""
    return _sealed_by(key, row["patient_id_sealed"])


def sealed_patient_keys(rows: Iterable[Row]) -> set[str]:
    """The patients whose keys opening `rows` needs."""
    return {row["patient_key"] for row in rows if is_sealed(row)}


def open_run(row: Row, keys: dict[str, DataKey]) -> Row | None:
    """The row with its patient data in clear; None when its key is gone. An unsealed row
    as it is."""
    if not is_sealed(row):
        return row
    if not readable(row, keys):
        return None
    patient_key = row["patient_key"]
    key = keys[patient_key]
    error = row["error"]
    if row.get("error_sealed") is not None:
        error = _open(key, patient_key, "reason", row["error_sealed"])
    return {
        **row,
        "patient_id": _open(key, patient_key, "patientId", row["patient_id_sealed"]),
        "patient_context": _open(key, patient_key, "patientContext", row["patient_context"]),
        "error": error,
    }


def patient_id_of(row: Row, keys: dict[str, DataKey]) -> str | None:
    """The patient id of a row with a run's patient columns (`patient_id`, `patient_key`,
    `patient_id_sealed`); None when it was sealed under a key that is gone."""
    if not is_sealed(row):
        return str(row["patient_id"])
    if not readable(row, keys):
        return None
    return str(_open(keys[row["patient_key"]], row["patient_key"], "patientId",
                     row["patient_id_sealed"]))  # fmt: skip


def readable(row: Row, keys: dict[str, DataKey]) -> bool:
    """Whether `keys` hold the key that sealed the row (`patient_key`, `patient_id_sealed`);
    an unsealed row is always readable."""
    if not is_sealed(row):
        return True
    key = keys.get(row["patient_key"])
    return key is not None and _sealed_by(key, row["patient_id_sealed"])


def is_sealed_event(event: Row) -> bool:
    return str(event["type"]).endswith(".v2")


def open_event(event: Row, key: DataKey | None) -> Row | None:
    """A timeline row as its `.v1` twin (type v1, no `patientKey`); None when its key is gone.
    An unsealed event as it is."""
    if not is_sealed_event(event):
        return event
    data = event["data"]
    if key is None or not _sealed_by(key, data.get("patientId")):
        return None
    try:
        clear = open_fields(data, key)
    except (ShreddingError, KeyError) as exc:
        raise SealingFaultError(type(exc).__name__) from None
    return {**event, "type": clear_type(event["type"]), "data": clear}


def open_reply(row: Row, patient_key: str, key: DataKey | None) -> Any:
    """A reply's data (`event_receipts.data`, or `data_sealed` opened); None when its key is
    gone."""
    envelope = row["data_sealed"]
    if envelope is None:
        return row["data"]
    if key is None or not _sealed_by(key, envelope):
        return None
    return _open(key, patient_key, "eventData", envelope)


def _sealed_by(key: DataKey, envelope: Any) -> bool:
    """Whether `key` sealed `envelope`; a value sealed under another key of the patient's is
    from before an erasure, and gone with it."""
    try:
        return kid_of(envelope) == key.kid
    except ShreddingError as exc:
        raise SealingFaultError(type(exc).__name__) from None


def _open(key: DataKey, patient_key: str, field: str, envelope: Any) -> Any:
    try:
        return open_sealed(key, patient_key, field, envelope)
    except ShreddingError as exc:
        raise SealingFaultError(type(exc).__name__) from None
