"""The patient's changelog record: bounded by the record size limit, oldest events first out."""

from __future__ import annotations

from datetime import timedelta

import pytest

from journeys_executor.core import PatientState
from journeys_executor.partition import _fitting
from journeys_executor.patients import patient_from_json
from journeys_runtime.kafka import RECORD_MAX_BYTES, RecordTooLargeError
from tests.unit.executor.helpers import T0
from tests.unit.executor.patients import PATIENT_KEY, patient_event


def test_events_with_large_data_are_dropped_oldest_first_until_the_record_fits() -> None:
    big = "x" * (RECORD_MAX_BYTES * 2 // 5)  # two fit in a record, three do not
    events = tuple(
        patient_event(f"e-{i}", "lab.result", T0 + timedelta(seconds=i), {"report": big})
        for i in range(3)
    )
    patient = PatientState(PATIENT_KEY, recent=events)

    kept, stored = _fitting(patient, None, PATIENT_KEY.encode())

    assert [e.event_id for e in kept.recent] == ["e-1", "e-2"]
    assert len(stored) <= RECORD_MAX_BYTES
    assert patient_from_json(stored, None) == kept


def test_a_state_that_fits_is_stored_as_it_is() -> None:
    patient = PatientState(PATIENT_KEY, recent=(patient_event("e-0", "x", T0),))
    kept, stored = _fitting(patient, None, PATIENT_KEY.encode())
    assert kept == patient
    assert patient_from_json(stored, None) == patient


def test_a_state_that_cannot_fit_even_without_events_is_refused() -> None:
    # Not reachable with real patient keys and the allowed caps: the guard still holds.
    patient = PatientState("k" * (RECORD_MAX_BYTES + 1))
    with pytest.raises(RecordTooLargeError):
        _fitting(patient, None, b"k")
