"""Sealed runs, pure: v1 twins are skipped, v2 events plan like their twins, envelopes stay shut."""

from __future__ import annotations

import json

from journeys_contracts.keys import patient_key
from journeys_contracts.sealed import clear_type
from journeys_projector.decode import Skipped, SkipReason, Source, UnknownSealedEvent, decode
from journeys_projector.plan import plan, run_fields
from journeys_runtime.dlq import without_data_key as _without_data_key
from journeys_runtime.sealing import open_value, seal_event, seal_start_run
from journeys_runtime.shredding import DataKey, KeyEncryptionKey, wrap
from tests.unit.projector.facts import SECRET, Story, full_run, start_run, waiting_run

KEY = DataKey.generate()


def _sealed(story: Story) -> list[bytes]:
    pk = patient_key(SECRET, story.patient_id)
    return [seal_event(e, KEY, pk).to_json() for e in story.events]


def test_a_v1_event_of_a_sealed_run_is_skipped_as_its_twin() -> None:
    event = Story().started().events[0].model_copy(update={"sealed_twin": True})
    assert decode(Source.EVENTS, event.to_json()) == Skipped(SkipReason.SEALED_TWIN)


def test_a_v1_event_of_a_newer_type_of_a_sealed_run_is_skipped_too() -> None:
    data = json.loads(Story().started().events[0].to_json())
    data.update(type="journeys.run.escalated.v1", sealedTwin=True)
    assert decode(Source.EVENTS, json.dumps(data).encode()) == Skipped(SkipReason.SEALED_TWIN)


def test_a_v2_event_of_a_newer_type_enters_the_timeline_by_its_common_fields() -> None:
    data = json.loads(_sealed(Story().started())[0])
    data["type"] = "journeys.run.escalated.v2"
    decoded = decode(Source.SEALED_EVENTS, json.dumps(data).encode())
    assert isinstance(decoded, UnknownSealedEvent)
    assert run_fields(decoded) == {}


def test_v2_events_set_the_same_run_fields_as_their_v1_twins() -> None:
    story = full_run()
    sealed = plan([decode(Source.SEALED_EVENTS, v) for v in _sealed(story)], SECRET)
    clear = plan(story.events, SECRET)
    assert sealed.changes == clear.changes
    assert [clear_type(e.type) for e in sealed.events.values()] == [
        e.type for e in clear.events.values()
    ]


def test_run_failed_v2_sets_the_sealed_error_and_no_clear_one() -> None:
    story = Story().started().failed("boom")
    (change,) = plan(
        [decode(Source.SEALED_EVENTS, v) for v in _sealed(story)], SECRET
    ).changes.values()
    assert "error" not in change.values
    envelope = json.loads(change.values["error_sealed"])
    assert open_value(KEY, patient_key(SECRET, story.patient_id), "reason", envelope) == "boom"


def test_start_run_sealed_makes_a_sealed_row_without_the_data_key() -> None:
    story = waiting_run()
    pk = patient_key(SECRET, story.patient_id)
    wrapped = wrap(KeyEncryptionKey("kek-1", bytes(32)), pk, KEY)
    command = seal_start_run(start_run(story), KEY, wrapped, pk)
    row = plan([decode(Source.COMMANDS, command.to_json())], SECRET).runs[story.run_id]
    assert (row.patient_id, row.patient_key) == (None, pk)
    assert open_value(KEY, pk, "patientId", json.loads(row.patient_id_sealed or "")) == (
        story.patient_id
    )
    assert "wrapped" not in row.patient_context + (row.patient_id_sealed or "")


def test_an_unsealed_run_row_carries_its_patient_key() -> None:
    story = Story().started()
    row = plan(story.events, SECRET).runs[story.run_id]
    assert (row.patient_id, row.patient_id_sealed) == (story.patient_id, None)
    assert row.patient_key == patient_key(SECRET, story.patient_id)


def test_a_dead_lettered_commands_data_key_is_stripped_however_its_name_is_spelled() -> None:
    plain = b'{"type":"journeys.command.start_run.v2","dataKey":{"kid":"k"},"runId":"x"}'
    escaped = plain.replace(b'"dataKey"', b'"data\\u004bey"')
    for value in (plain, escaped):
        stripped, changed = _without_data_key(value)
        assert changed
        assert json.loads(stripped or b"") == {
            "type": "journeys.command.start_run.v2",
            "runId": "x",
        }


def test_a_dead_lettered_value_naming_the_data_key_that_does_not_parse_is_dropped() -> None:
    assert _without_data_key(b'{"dataKey": {"wrapped": "q7k') == (b"", True)
    assert _without_data_key(b"{not json") == (b"{not json", False)
    assert _without_data_key(b'{"runId": "x"}') == (b'{"runId": "x"}', False)
