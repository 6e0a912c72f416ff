"""Decoding: each topic's records become facts, non-facts, or poison with a value-free reason."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest

from journeys_contracts import events as ev
from journeys_contracts.commands import CancelRun, FireTimer, RecordDelivery, StartRun
from journeys_contracts.journeys import JourneyDefined
from journeys_projector.decode import MAX_SEQ, Poison, Source, Unknown, decode
from tests.unit.projector.facts import Story, journey, start_run

NOW = datetime(2025, 3, 1, tzinfo=UTC)


def test_decodes_a_journey_on_the_definitions_topic() -> None:
    defined = journey()
    assert decode(Source.DEFINITIONS, defined.to_json()) == defined


def test_decodes_start_run_as_the_fact_that_a_run_was_accepted() -> None:
    command = start_run(Story())
    assert isinstance(decode(Source.COMMANDS, command.to_json()), StartRun)


@pytest.mark.parametrize(
    "command",
    [
        FireTimer(run_id=uuid.uuid4(), timer_id=uuid.uuid4(), due_at=NOW, fired_at=NOW),
        CancelRun(run_id=uuid.uuid4(), requested_at=NOW),
    ],
)
def test_other_commands_are_requests_not_facts(command: FireTimer) -> None:
    assert decode(Source.COMMANDS, command.to_json()) is None


def test_a_delivery_report_is_a_fact_whatever_the_executor_makes_of_it() -> None:
    report = RecordDelivery(
        run_id=uuid.uuid4(), message_id=uuid.uuid4(), channel="sms", delivered=True, at=NOW
    )
    assert decode(Source.COMMANDS, report.to_json()) == report


def test_decodes_every_event_type() -> None:
    story = Story().started().message("welcome").delay("wait").elapsed("wait").failed("boom")
    decoded = [decode(Source.EVENTS, e.to_json()) for e in story.events]
    assert decoded == story.events


@pytest.mark.parametrize("source", list(Source))
def test_undecodable_bytes_are_poison(source: Source) -> None:
    poison = decode(source, b"\xff\xfe not json")
    assert isinstance(poison, Poison)
    assert poison.stage == "projector.decode"


@pytest.mark.parametrize(
    ("source", "record"),
    [
        (Source.COMMANDS, start_run(Story())),
        (Source.DEFINITIONS, journey()),
    ],
)
def test_a_record_type_of_a_newer_version_is_unknown_not_poison(
    source: Source, record: JourneyDefined
) -> None:
    data = {**json.loads(record.to_json()), "type": "journeys.run.teleported.v1"}

    assert decode(source, json.dumps(data).encode()) == Unknown("journeys.run.teleported.v1")


def test_an_event_of_a_newer_type_with_the_common_fields_is_kept_as_received() -> None:
    data = {**json.loads(Story().started().events[0].to_json()),
            "type": "journeys.run.teleported.v1", "teleportedTo": {"ward": "7b"}}  # fmt: skip

    decoded = decode(Source.EVENTS, json.dumps(data).encode())

    assert isinstance(decoded, ev.UnknownEvent)
    assert (decoded.type, decoded.seq) == ("journeys.run.teleported.v1", 1)
    assert json.loads(decoded.model_dump_json(by_alias=True)) == data


@pytest.mark.parametrize("missing", ["runId", "journeyId", "patientId", "seq", "occurredAt"])
def test_an_event_of_a_newer_type_without_a_common_field_is_unknown_not_poison(
    missing: str,
) -> None:
    data = {**json.loads(Story().started().events[0].to_json()),
            "type": "journeys.run.teleported.v1"}  # fmt: skip
    del data[missing]

    assert decode(Source.EVENTS, json.dumps(data).encode()) == Unknown("journeys.run.teleported.v1")


def test_an_event_of_a_newer_type_postgresql_cannot_store_is_poison() -> None:
    data = {**json.loads(Story().started().events[0].to_json()),
            "type": "journeys.run.teleported.v1", "note": "a\x00b"}  # fmt: skip

    poison = decode(Source.EVENTS, json.dumps(data).encode())

    assert isinstance(poison, Poison)
    assert poison.stage == "projector.validate"


def test_an_unknown_audit_type_is_unknown_not_poison() -> None:
    data = {"type": "journeys.audit.export_recorded.v1", "auditId": str(uuid.uuid4())}

    assert decode(Source.AUDIT, json.dumps(data).encode()) == Unknown(
        "journeys.audit.export_recorded.v1"
    )


def test_a_type_field_that_names_no_type_is_poison_that_names_the_type_field() -> None:
    data = json.loads(Story().started().events[0].to_json())
    data["type"] = "RunTeleported"
    poison = decode(Source.EVENTS, json.dumps(data).encode())
    assert isinstance(poison, Poison)
    assert "union_tag_invalid" in poison.reason


def test_a_command_on_the_events_topic_is_poison() -> None:
    assert isinstance(decode(Source.EVENTS, start_run(Story()).to_json()), Poison)


def test_a_tombstone_is_poison() -> None:
    assert decode(Source.DEFINITIONS, None) == Poison("projector.decode", "empty value (tombstone)")


def test_the_poison_reason_names_fields_but_never_echoes_patient_data() -> None:
    data = json.loads(start_run(Story(patient_id="Jane Doe 1970-01-01")).to_json())
    data["requestedAt"] = "Jane Doe 1970-01-01"
    poison = decode(Source.COMMANDS, json.dumps(data).encode())
    assert isinstance(poison, Poison)
    assert "requestedAt" in poison.reason or "requested_at" in poison.reason
    assert "Jane" not in poison.reason


def test_a_seq_beyond_a_postgresql_integer_is_poison() -> None:
    event = Story().started().events[0].model_copy(update={"seq": MAX_SEQ + 1})
    assert decode(Source.EVENTS, event.to_json()) == Poison(
        "projector.validate", f"seq: greater than {MAX_SEQ}"
    )


def test_a_nul_character_postgresql_cannot_store_is_poison() -> None:
    story = Story()
    story.emit(ev.RunStarted, journey_name="x", start_node_id="welcome",
               patient_context={"note": "a\x00b"}, definition=journey().definition)  # fmt: skip
    poison = decode(Source.EVENTS, story.events[0].to_json())
    assert isinstance(poison, Poison)
    assert poison.stage == "projector.validate"


def test_an_escaped_backslash_before_u0000_is_plain_text() -> None:
    story = Story()
    story.emit(ev.RunStarted, journey_name="x", start_node_id="welcome",
               patient_context={"note": "C:\\u0000"}, definition=journey().definition)  # fmt: skip
    assert decode(Source.EVENTS, story.events[0].to_json()) == story.events[0]


def test_a_journey_record_decodes_from_snake_case_too() -> None:
    defined = journey()
    snake = defined.model_dump_json().encode()
    assert decode(Source.DEFINITIONS, snake) == JourneyDefined.model_validate_json(snake)
