"""The commands the engine benchmarks inject: sealed ones are what the API writes when it seals."""

from __future__ import annotations

from journeys_bench.load import start_runs
from journeys_contracts.commands import StartRun, StartRunSealed, decode_command
from journeys_contracts.envelope import header
from journeys_runtime.keyring import DEV_KEK_ID, DEV_KEKS, Keyring
from journeys_runtime.sealing import from_wire, open_start_run

KEYRING = Keyring.parse(DEV_KEKS, DEV_KEK_ID)


def test_unsealed_runs_are_start_run_v1() -> None:
    (record,) = start_runs(1)

    command = decode_command(record.value)

    assert isinstance(command, StartRun)
    assert header(record.headers, "ce_type") == command.type
    assert command.patient_id.encode() in record.value


def test_sealed_runs_open_under_the_keyring_to_the_patients_start_run() -> None:
    records = start_runs(2, keyring=KEYRING)

    commands = [decode_command(r.value) for r in records]

    assert all(isinstance(c, StartRunSealed) for c in commands)
    for record, command in zip(records, commands, strict=True):
        assert isinstance(command, StartRunSealed)
        assert header(record.headers, "ce_type") == "journeys.command.start_run.v2"
        assert record.key == command.patient_key.encode()
        key = KEYRING.unwrap(command.patient_key, from_wire(command.data_key))
        opened = open_start_run(command, key)
        assert str(opened.run_id) == record.id
        assert opened.patient_id.encode() not in record.value
    assert commands[0].data_key.kid != commands[1].data_key.kid  # one data key per patient
