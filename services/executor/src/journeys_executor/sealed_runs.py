"""Sealed runs at the executor's edges: opening sealed commands, naming v2 records, the DLQ.

A run started by `StartRunSealed` carries its patient's data key, wrapped, in its state
(`RunState.data_key`, with `patient_key`). Its commands are opened here into the v1 commands
the core decides; `partition.py` seals what the run publishes and `runs.py` what it stores.
Nothing here does I/O: unwrapping goes through the process's `DataKeys` cache.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace

from pydantic import ValidationError

from journeys_contracts.commands import CancelRunSealed, RunCommand, StartRunSealed
from journeys_contracts.envelope import CloudEvent
from journeys_contracts.sealed import WrappedDataKey
from journeys_executor.core import RunState
from journeys_executor.runs import data_key
from journeys_runtime.dlq import describe_validation_error
from journeys_runtime.keyring import DataKeys
from journeys_runtime.sealing import open_cancel_run, open_start_run
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
