"""Patient events, pure: their commands become receipts, the events a wait or an exit
publishes set the run's fields, and every run an event started, resumed or exited is
recorded under the event's receipt id."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from journeys_contracts import events as ev
from journeys_contracts.commands import REPLIED, RecordPatientEvent, RecordPatientEventSealed
from journeys_projector.decode import Poison, Source, decode
from journeys_projector.plan import EffectRow, ReceiptRow, plan, run_fields
from journeys_runtime.sealing import seal_event
from journeys_runtime.shredding import DataKey, KeyEncryptionKey, open_sealed
from tests.unit.projector.facts import SECRET, T0, Story, patient_event, sealed_patient_event

KEY = DataKey.generate()
KEK = KeyEncryptionKey("test-kek", bytes(32))


def sealed(command: RecordPatientEvent) -> RecordPatientEventSealed:
    return sealed_patient_event(command, KEY, KEK)


def sealed_facts(story: Story) -> list[Any]:
    key = patient_event(story.patient_id).patient_key
    return [decode(Source.SEALED_EVENTS, seal_event(e, KEY, key).to_json())  # type: ignore[arg-type]
            for e in story.events]  # fmt: skip


def test_record_patient_event_commands_are_receipts_clear_or_sealed() -> None:
    command = patient_event()
    sealed_command = sealed(command)
    assert decode(Source.COMMANDS, command.to_json()) == command
    assert decode(Source.COMMANDS, sealed_command.to_json()) == sealed_command


def test_a_receipt_keeps_who_what_when_and_the_way_in_but_no_patient_id_or_data() -> None:
    """Of every event but a reply (below)."""
    command = patient_event(source="hook:ehr")
    row = plan([command], SECRET).receipts[command.receipt_id]
    assert row == ReceiptRow(
        command.receipt_id, "evt-1", command.patient_key, "intake_form.submitted", "hook:ehr",
        T0, T0 + timedelta(seconds=1),
    )  # fmt: skip
    assert plan([sealed(command)], SECRET).receipts == {command.receipt_id: row}


def test_a_reply_keeps_its_data_for_the_conversation_sealed_as_it_came() -> None:
    reply = patient_event(event_type=REPLIED).model_copy(
        update={"event_data": {"channel": "sms", "body": "C, see you", "keyword": None}}
    )
    clear = plan([reply], SECRET).receipts[reply.receipt_id]
    assert json.loads(clear.data or "") == reply.event_data
    assert clear.data_sealed is None

    sealed_reply = sealed(reply)
    row = plan([sealed_reply], SECRET).receipts[reply.receipt_id]
    assert row.data is None
    envelope = json.loads(row.data_sealed or "")
    assert envelope == sealed_reply.event_data.model_dump(mode="json")
    assert open_sealed(KEY, reply.patient_key, "eventData", envelope) == reply.event_data
    assert "C, see you" not in (row.data_sealed or "")


def test_a_clear_reply_postgresql_would_refuse_keeps_its_receipt_without_data() -> None:
    reply = patient_event(event_type=REPLIED).model_copy(
        update={"event_data": {"channel": "sms", "body": "nul\x00here"}}
    )
    assert decode(Source.COMMANDS, reply.to_json()) == reply
    row = plan([reply], SECRET).receipts[reply.receipt_id]
    assert (row.event_type, row.data, row.data_sealed) == (REPLIED, None, None)


def test_an_event_recorded_twice_has_one_receipt_and_starts_no_run() -> None:
    command = patient_event()
    rows = plan([command, sealed(command), command], SECRET)
    assert list(rows.receipts) == [command.receipt_id]
    assert (rows.runs, rows.events, rows.changes) == ({}, {}, {})


def test_patient_data_that_is_not_stored_cannot_poison_a_receipt() -> None:
    command = patient_event().model_copy(
        update={"patient_id": "nul\x00id", "event_data": {"note": "nul\x00here"}}
    )
    assert decode(Source.COMMANDS, command.to_json()) == command


def test_a_receipt_postgresql_would_refuse_is_poison() -> None:
    command = patient_event(event_id="evt\x00-1")
    poison = decode(Source.COMMANDS, command.to_json())
    assert isinstance(poison, Poison)
    assert poison.stage == "projector.validate"


def _waiting(story: Story) -> ev.EventWaiting:
    waiting = story.events[-1]
    assert isinstance(waiting, ev.EventWaiting)
    return waiting


def test_waiting_for_an_event_shows_what_and_until_when() -> None:
    story = Story().started().wait_for("form", "intake_form.submitted", seconds=3600)
    assert run_fields(_waiting(story)) == {
        "status": "waiting_event", "waiting_event_type": "intake_form.submitted",
        "waiting_until": _waiting(story).due_at,
    }  # fmt: skip


@pytest.mark.parametrize(
    "end",
    [
        lambda s: s.matched("form", patient_event()).events[-1],
        lambda s: s.timed_out("form").events[-1],
        lambda s: s.completed("form").events[-1],
        lambda s: s.failed("boom").events[-1],
        lambda s: s.exited("form", patient_event(event_type="appointment.cancelled")).events[-1],
    ],
)
def test_every_end_of_a_wait_clears_what_it_waited_for(end: Any) -> None:
    fields = run_fields(end(Story().started().wait_for("form")))
    assert (fields["waiting_event_type"], fields["waiting_until"]) == (None, None)


@pytest.mark.parametrize(
    ("end", "status"),
    [(lambda s: s.matched("form", patient_event()), "in_progress"),
     (lambda s: s.timed_out("form"), "in_progress"),
     (lambda s: s.exited("form", patient_event(event_type="appointment.cancelled")),
      "cancelled")],
)  # fmt: skip
def test_a_wait_ends_in_progress_when_met_or_timed_out_and_cancelled_when_exited(
    end: Any, status: str
) -> None:
    story = end(Story().started().wait_for("form"))
    change = plan(story.events, SECRET).changes[story.run_id]
    assert change.values["status"] == status
    assert (change.values["waiting_event_type"], change.values["waiting_until"]) == (None, None)


def test_run_exited_only_enters_the_timeline() -> None:
    story = Story().started().exited("welcome", patient_event(event_type="appointment.cancelled"))
    exited = story.events[-2]
    assert isinstance(exited, ev.RunExited)
    assert run_fields(exited) == {}
    assert plan(story.events, SECRET).events[(story.run_id, 2)].type == "journeys.run.exited.v1"


def test_runs_started_resumed_and_exited_by_an_event_are_its_effects() -> None:
    booked = patient_event(event_id="appt-1", event_type="appointment.booked")
    form = patient_event(event_id="form-1")
    cancelled = patient_event(event_id="appt-1-x", event_type="appointment.cancelled")
    started = Story().triggered(booked)
    resumed = Story().started().wait_for("form").matched("form", form)
    exited = Story().started().exited("welcome", cancelled)

    effects = plan([*started.events, *resumed.events, *exited.events], SECRET).effects

    assert sorted(effects.values(), key=lambda e: e.effect) == [
        EffectRow(cancelled.receipt_id, exited.run_id, 2, exited.journey_id, "exited",
                  "welcome", exited.events[1].occurred_at),
        EffectRow(form.receipt_id, resumed.run_id, 4, resumed.journey_id, "resumed", "form",
                  resumed.last_at),
        EffectRow(booked.receipt_id, started.run_id, 1, started.journey_id, "started", None,
                  started.last_at),
    ]  # fmt: skip


def test_runs_started_by_request_waits_timed_out_and_cancels_are_no_effects() -> None:
    story = Story().started().wait_for("form").timed_out("form").cancelled("form")
    assert plan(story.events, SECRET).effects == {}


def test_v2_events_of_a_sealed_run_have_the_effects_and_fields_of_their_v1_twins() -> None:
    form = patient_event(event_id="form-1")
    cancelled = patient_event(event_id="appt-1-x", event_type="appointment.cancelled")
    story = Story().triggered(patient_event(event_id="appt-1", event_type="appointment.booked"))
    story.wait_for("form").matched("form", form).wait_for("again").exited("again", cancelled)
    clear, v2 = plan(story.events, SECRET), plan(sealed_facts(story), SECRET)
    assert v2.effects == clear.effects
    assert len(v2.effects) == 3
    assert v2.changes == clear.changes


def test_a_sealed_match_keeps_its_event_data_sealed_in_the_timeline() -> None:
    story = Story().started().wait_for("form").matched("form", patient_event())
    row = plan(sealed_facts(story), SECRET).events[(story.run_id, 4)]
    data = json.loads(row.data)
    assert row.type == "journeys.event.matched.v2"
    assert set(data["eventData"]) == {"enc", "kid", "ct"}
    assert "score" not in row.data
