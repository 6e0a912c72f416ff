"""Sealing and opening whole records: a `.v1` record and its `.v2` twin, field by field.

The `.v2` twin of a record is its `.v1` JSON with each field of `SEALED_FIELDS` that holds a
value sealed under the patient's data key (the field's wire name is the associated data, so a
value copied verbatim from one record into another of the same field still opens: the
executor copies `patientContext` from the command into its state and events, the projector
into its read model), `patientKey` added, and `sealedTwin` dropped. A `null` reason or note
stays `null`: there is nothing to hide, and readers see that no reason was given.

Pure: no I/O, no settings. Which data key seals what is the caller's (the API's and the
executor's) concern; `journeys_runtime.keyring` unwraps and caches the keys.
"""

from __future__ import annotations

from typing import Any, cast

from journeys_contracts.commands import CancelRun, CancelRunSealed, StartRun, StartRunSealed
from journeys_contracts.deliveries import DeliveryRequested, DeliveryRequestedSealed
from journeys_contracts.events import EVENT_ADAPTER, RunEvent
from journeys_contracts.events_sealed import SEALED_EVENT_ADAPTER, SealedRunEvent
from journeys_contracts.sealed import (
    SEALED_FIELDS,
    SealedValue,
    WrappedDataKey,
    clear_type,
    sealed_type,
)
from journeys_runtime.shredding import DataKey, WrappedKey, open_sealed, seal

TWIN_FIELD = "sealedTwin"


def seal_value(key: DataKey, patient_key: str, field: str, value: Any) -> SealedValue:
    return SealedValue.model_validate(seal(key, patient_key, field, value))


def open_value(key: DataKey, patient_key: str, field: str, sealed: SealedValue | Any) -> Any:
    """The clear value; `journeys_runtime.shredding` errors when it does not open."""
    if isinstance(sealed, SealedValue):
        sealed = sealed.model_dump()
    return open_sealed(key, patient_key, field, sealed)


def seal_fields(data: dict[str, Any], key: DataKey, patient_key: str) -> dict[str, Any]:
    """A `.v1` record's JSON object -> its `.v2` twin's (a new dict; `data` is not changed)."""
    sealed = {k: v for k, v in data.items() if k != TWIN_FIELD}
    for name in SEALED_FIELDS:
        if sealed.get(name) is not None:
            sealed[name] = seal(key, patient_key, name, sealed[name])
    sealed["type"] = sealed_type(sealed["type"])
    sealed["patientKey"] = patient_key
    return sealed


def open_fields(data: dict[str, Any], key: DataKey) -> dict[str, Any]:
    """A `.v2` record's JSON object -> its `.v1` twin's; raises `ShreddingError` (a
    `ValueError`) when a field does not open under `key`."""
    patient_key = data["patientKey"]
    clear = {k: v for k, v in data.items() if k != "patientKey"}
    for name in SEALED_FIELDS:
        if clear.get(name) is not None:
            clear[name] = open_sealed(key, patient_key, name, clear[name])
    clear["type"] = clear_type(clear["type"])
    return clear


def seal_event(event: RunEvent, key: DataKey, patient_key: str) -> SealedRunEvent:
    data = seal_fields(event.model_dump(mode="json", by_alias=True), key, patient_key)
    return cast(SealedRunEvent, SEALED_EVENT_ADAPTER.validate_python(data))


def open_event(event: SealedRunEvent, key: DataKey) -> RunEvent:
    """The `.v1` twin, as a reader of v1 sees it (with `sealedTwin` set)."""
    data = open_fields(event.model_dump(mode="json", by_alias=True), key)
    data[TWIN_FIELD] = True
    return cast(RunEvent, EVENT_ADAPTER.validate_python(data))


def to_wire(wrapped: WrappedKey) -> WrappedDataKey:
    return WrappedDataKey.model_validate(wrapped.to_json())


def from_wire(wrapped: WrappedDataKey) -> WrappedKey:
    return WrappedKey.from_json(wrapped.model_dump())


def seal_start_run(
    command: StartRun, key: DataKey, wrapped: WrappedKey, patient_key: str
) -> StartRunSealed:
    data = seal_fields(command.model_dump(mode="json", by_alias=True), key, patient_key)
    data["dataKey"] = wrapped.to_json()
    return StartRunSealed.model_validate(data)


def open_start_run(command: StartRunSealed, key: DataKey) -> StartRun:
    data = open_fields(command.model_dump(mode="json", by_alias=True), key)
    del data["dataKey"]
    return StartRun.model_validate(data)


def seal_delivery(
    request: DeliveryRequested, key: DataKey, wrapped: WrappedDataKey
) -> DeliveryRequestedSealed:
    data = seal_fields(request.model_dump(mode="json", by_alias=True), key, request.patient_key)
    data["dataKey"] = wrapped.model_dump()
    return DeliveryRequestedSealed.model_validate(data)


def open_delivery(request: DeliveryRequestedSealed, key: DataKey) -> DeliveryRequested:
    data = open_fields(request.model_dump(mode="json", by_alias=True), key)
    del data["dataKey"]
    data["patientKey"] = request.patient_key  # a field of the clear request too
    return DeliveryRequested.model_validate(data)


def seal_cancel_run(command: CancelRun, key: DataKey, patient_key: str) -> CancelRunSealed:
    data = seal_fields(command.model_dump(mode="json", by_alias=True), key, patient_key)
    return CancelRunSealed.model_validate(data)


def open_cancel_run(command: CancelRunSealed, key: DataKey) -> CancelRun:
    data = open_fields(command.model_dump(mode="json", by_alias=True), key)
    return CancelRun.model_validate(data)
