"""Sealed runs at the executor's edges: opening sealed commands, naming v2 records, the DLQ.

A run started by `StartRunSealed` carries its patient's data key, wrapped, in its state
(`RunState.data_key`, with `patient_key`). Its commands are opened here into the v1 commands
the core decides; `partition.py` seals what the run publishes and `runs.py` what it stores.
Nothing here does I/O: unwrapping goes through the process's `DataKeys` cache.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace

from pydantic import ValidationError

from journeys_contracts.commands import (
    CancelRunSealed,
    RecordPatientEvent,
    RecordPatientEventSealed,
    RunCommand,
    StartRunSealed,
    receipt_id,
)
from journeys_contracts.envelope import CloudEvent
from journeys_contracts.sealed import WrappedDataKey
from journeys_executor.core import PatientEvent, RunState
from journeys_executor.runs import data_key
from journeys_runtime.dlq import describe_validation_error
from journeys_runtime.keyring import DataKeys
from journeys_runtime.sealing import open_cancel_run, open_start_run, open_value
from journeys_runtime.shredding import DataKey, ShreddingError


class UnopenableCommandError(ValueError):
    """A sealed command that cannot be opened for its run; the message names no data."""


@dataclass(frozen=True)
class Sealing:
    """How a sealed run's patient data is sealed: its patient key and data key (wrapped, as
    stored, and unwrapped)."""

    patient_key: str
    wrapped: WrappedDataKey
    key: DataKey


def sealing_of(state: RunState | None, data_keys: DataKeys | None) -> Sealing | None:
    """How `state`'s run is sealed; None for an unsealed run (or no run)."""
    if state is None or state.data_key is None or state.patient_key is None:
        return None
    key = data_key(data_keys, state.patient_key, state.data_key)
    return Sealing(state.patient_key, state.data_key, key)


def sealed(state: RunState | None, sealing: Sealing | None) -> RunState | None:
    """`state` marked as the sealed run it is: the core builds a run's first state from its
    `run.started`, which names no data key."""
    if state is None or sealing is None or state.data_key is not None:
        return state
    return state.model_copy(
        update={"patient_key": sealing.patient_key, "data_key": sealing.wrapped}
    )


def opened(
    record_key: bytes | None,
    command: RunCommand,
    state: RunState | None,
    data_keys: DataKeys | None,
) -> tuple[RunCommand, Sealing | None]:
    """The command the core decides (a sealed one opened) and how its run is sealed.

    A sealed start must be keyed by its own patient key (its data key is bound to it), a
    sealed cancel must be for a sealed run of its patient; a cancel of no run is left to the
    core, which rejects it. Raises `ValueError` (a `ShreddingError` among them) when the
    command cannot be opened: it is poison.
    """
    if isinstance(command, StartRunSealed):
        if record_key is None or record_key.decode(errors="replace") != command.patient_key:
            raise UnopenableCommandError(
                "Expected patientKey to be the record's key, but it is not"
            )
        key = data_key(data_keys, command.patient_key, command.data_key)
        return open_start_run(command, key), Sealing(command.patient_key, command.data_key, key)
    sealing = sealing_of(state, data_keys)
    if isinstance(command, CancelRunSealed) and state is not None:
        if sealing is None or sealing.patient_key != command.patient_key:
            raise UnopenableCommandError(
                "Expected a sealed cancel for a sealed run of its patient key, but it is not"
            )
        return open_cancel_run(command, sealing.key), sealing
    return command, sealing


def opened_event(
    record_key: bytes | None,
    command: RecordPatientEvent | RecordPatientEventSealed,
    patient_key_of: Callable[[str], str],
    data_keys: DataKeys | None,
) -> tuple[PatientEvent, str, Sealing | None]:
    """A patient event as the core takes it, its patient's id, and how the patient's data is
    sealed (None for a clear event). The record must be keyed by the event's patient key, and
    a clear event's patient key must be its patient id's. Raises `ValueError` (poison)."""
    if record_key is None or record_key.decode(errors="replace") != command.patient_key:
        raise UnopenableCommandError("Expected patientKey to be the record's key, but it is not")
    if command.receipt_id != receipt_id(command.patient_key, command.event_id):
        raise UnopenableCommandError(
            "Expected receiptId to be the receipt id of patientKey and eventId, but it is not"
        )
    sealing = None
    if isinstance(command, RecordPatientEventSealed):
        key = data_key(data_keys, command.patient_key, command.data_key)
        sealing = Sealing(command.patient_key, command.data_key, key)
        patient_id = open_value(key, command.patient_key, "patientId", command.patient_id)
        data = open_value(key, command.patient_key, "eventData", command.event_data)
        if not isinstance(patient_id, str) or not isinstance(data, dict):
            raise UnopenableCommandError(
                "Expected patientId to open to a string and eventData to an object, but not"
            )
    else:
        patient_id, data = command.patient_id, command.event_data
        if patient_key_of(patient_id) != command.patient_key:
            raise UnopenableCommandError(
                "Expected patientKey to be the patient id's key, but it is not"
            )
    event = PatientEvent(
        receipt_id=command.receipt_id, event_id=command.event_id, type=command.event_type,
        occurred_at=command.occurred_at, received_at=command.received_at, data=data,
    )  # fmt: skip
    return event, patient_id, sealing


def unopenable(exc: Exception) -> str:
    """Why a sealed command did not open, naming no data: our own messages, the errors of
    the crypto (whose messages never quote a value), field paths of validation, else a type."""
    if isinstance(exc, UnopenableCommandError):
        return str(exc)
    if isinstance(exc, ShreddingError):
        return f"sealed command does not open: {type(exc).__name__}: {exc}"
    if isinstance(exc, ValidationError):
        return f"sealed command opens to an invalid command: {describe_validation_error(exc)}"
    return f"sealed command does not open: {type(exc).__name__}"


def sealed_envelope(twin: CloudEvent, kind: str) -> CloudEvent:
    """The envelope of a record on the v2 events topic: its v1 twin's, with the v2 type and an
    id of its own (a UUIDv5 of the twin's, so a replay keeps it too)."""
    return replace(twin, id=str(uuid.uuid5(uuid.UUID(twin.id), "sealed")), type=kind)
