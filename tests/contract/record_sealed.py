"""Writes the recorded payloads of the sealed (`.v2`) types from their recorded `.v1` twins.

`python -m tests.contract.record_sealed` seals each recorded `.v1` run event, `start_run.v1`,
`cancel_run.v1`, `record_patient_event.v1` and `delivery.requested.v1` with the real sealing
functions, as the executor and the API do, and writes the `.v2` record a producer would write
next to it. It never overwrites a file: recorded payloads are frozen once written. Everything
is sealed for the patient key of `patient-123` under the development patient-key secret, with
one data key, wrapped under the public development KEK in `journeys.command.start_run.v2.json`;
a later run reuses that data key, so every recorded `.v2` record opens with the same key.
`test_recorded.py` opens them back and compares them with their `.v1` twins.
"""

from __future__ import annotations

import json
from pathlib import Path

from journeys_contracts.commands import (
    CancelRun,
    RecordPatientEvent,
    RecordPatientEventSealed,
    StartRun,
    StartRunSealed,
    decode_command,
)
from journeys_contracts.deliveries import DeliveryRequested, decode_delivery
from journeys_contracts.events import EVENT_TYPES, PatientErased, decode_event, type_of
from journeys_contracts.keys import patient_key
from journeys_contracts.sealed import sealed_type
from journeys_contracts.wire import WireModel
from journeys_runtime.keyring import DEV_KEK_ID, DEV_KEKS, Keyring
from journeys_runtime.sealing import (
    from_wire,
    seal_cancel_run,
    seal_delivery,
    seal_event,
    seal_fields,
    seal_start_run,
    to_wire,
)
from journeys_runtime.settings import DEV_PATIENT_KEY_SECRET
from journeys_runtime.shredding import DataKey, WrappedKey

RECORDED = Path(__file__).parent / "recorded"
PATIENT_ID = "patient-123"
PATIENT_KEY = patient_key(DEV_PATIENT_KEY_SECRET, PATIENT_ID)
KEYRING = Keyring.parse(DEV_KEKS, DEV_KEK_ID)
START_RUN_V2 = RECORDED / "journeys.command.start_run.v2.json"


def recorded_bytes(type_name: str) -> bytes:
    return (RECORDED / f"{type_name}.json").read_bytes()


def recorded_data_key() -> DataKey | None:
    """The data key wrapped in the recorded `start_run.v2`, if it was recorded already."""
    if not START_RUN_V2.exists():
        return None
    command = decode_command(START_RUN_V2.read_bytes())
    assert isinstance(command, StartRunSealed)
    return KEYRING.unwrap(command.patient_key, from_wire(command.data_key))


def sealed_records(key: DataKey) -> dict[str, WireModel]:
    """Each `.v2` type name -> its record, sealed from the recorded `.v1` twin."""
    records: dict[str, WireModel] = {}
    for model in EVENT_TYPES:
        if model is PatientErased:  # no patient data: published on v2 as it is
            continue
        event = decode_event(recorded_bytes(type_of(model)))
        assert not isinstance(event, PatientErased)
        records[sealed_type(type_of(model))] = seal_event(event, key, PATIENT_KEY)
    start = decode_command(recorded_bytes("journeys.command.start_run.v1"))
    cancel = decode_command(recorded_bytes("journeys.command.cancel_run.v1"))
    assert isinstance(start, StartRun)
    assert isinstance(cancel, CancelRun)
    wrapped = KEYRING.wrap(PATIENT_KEY, key)
    records["journeys.command.start_run.v2"] = seal_start_run(start, key, wrapped, PATIENT_KEY)
    records["journeys.command.cancel_run.v2"] = seal_cancel_run(cancel, key, PATIENT_KEY)
    records["journeys.command.record_patient_event.v2"] = seal_patient_event(key, wrapped)
    request = decode_delivery(recorded_bytes("journeys.delivery.requested.v1"))
    assert isinstance(request, DeliveryRequested)
    records["journeys.delivery.requested.v2"] = seal_delivery(request, key, to_wire(wrapped))
    return records


def seal_patient_event(key: DataKey, wrapped: WrappedKey) -> RecordPatientEventSealed:
    """As the API seals a patient event: its patient id and data, with the data key wrapped."""
    event = decode_command(recorded_bytes("journeys.command.record_patient_event.v1"))
    assert isinstance(event, RecordPatientEvent)
    data = seal_fields(event.model_dump(mode="json", by_alias=True), key, PATIENT_KEY)
    return RecordPatientEventSealed.model_validate({**data, "dataKey": wrapped.to_json()})


def main() -> None:
    key = recorded_data_key() or DataKey.generate()
    for type_name, record in sealed_records(key).items():
        path = RECORDED / f"{type_name}.json"
        if path.exists():
            continue
        path.write_bytes(record.to_json() + b"\n")
        print(f"recorded {path.name}")
    assert json.loads(START_RUN_V2.read_bytes())["patientKey"] == PATIENT_KEY


if __name__ == "__main__":
    main()
