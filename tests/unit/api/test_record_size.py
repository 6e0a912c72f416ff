"""Record sizes of a sealed trigger: what is measured is what the API and the executor will
produce, sealed, not the clear records."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from journeys_api.record_size import run_record_sizes
from journeys_contracts.commands import StartRun
from journeys_contracts.definition import JourneyDefinition
from journeys_contracts.events import RunStarted
from journeys_contracts.keys import patient_key
from journeys_runtime.keyring import DEV_KEKS, Keyring
from journeys_runtime.sealing import seal_event, seal_start_run
from journeys_runtime.settings import DEV_PATIENT_KEY_SECRET
from journeys_runtime.shredding import DataKey
from tests.unit.api.journeys import HIP_REPLACEMENT_JOURNEY

KEYRING = Keyring.parse(DEV_KEKS, "dev")
DEFINITION = JourneyDefinition.model_validate(HIP_REPLACEMENT_JOURNEY)
JOURNEY = uuid.UUID(int=7)
PATIENT = "patient-4711"
KEY = patient_key(DEV_PATIENT_KEY_SECRET, PATIENT)
CONTEXT = {"id": PATIENT, "pad": "é" * 30_000}


def test_sealed_sizes_are_those_of_the_sealed_records_produced() -> None:
    sizes = run_record_sizes(JOURNEY, PATIENT, CONTEXT, DEFINITION, sealed_for=(KEYRING, KEY))

    key = DataKey.generate()  # another key than the one measured with: sizes do not depend on it
    now = datetime.now(UTC)
    command = StartRun(
        run_id=uuid.uuid4(), journey_id=JOURNEY, patient_id=PATIENT, patient_context=CONTEXT,
        definition=DEFINITION, requested_at=now,
    )  # fmt: skip
    started = RunStarted(
        run_id=command.run_id, journey_id=JOURNEY, patient_id=PATIENT, seq=1, occurred_at=now,
        journey_name=DEFINITION.name, start_node_id=DEFINITION.start_node_id,
        patient_context=CONTEXT, definition=DEFINITION, sealed_twin=True,
    )  # fmt: skip
    sealed_command = seal_start_run(command, key, KEYRING.wrap(KEY, key), KEY)
    assert sizes["sealed StartRun command"] == len(sealed_command.to_json())
    assert sizes["sealed RunStarted event"] == len(seal_event(started, key, KEY).to_json())
    assert sizes["RunStarted event"] == len(started.to_json())
    assert sizes["run state record"] > sizes["sealed RunStarted event"]


def test_sealing_grows_the_records_by_about_a_third_of_the_context() -> None:
    clear = run_record_sizes(JOURNEY, PATIENT, CONTEXT, DEFINITION)
    sealed = run_record_sizes(JOURNEY, PATIENT, CONTEXT, DEFINITION, sealed_for=(KEYRING, KEY))

    context_bytes = len(str(CONTEXT["pad"]).encode())  # 60,000: two bytes a character
    growth = sealed["sealed StartRun command"] - clear["StartRun command"]
    assert context_bytes / 4 < growth < context_bytes / 2
