"""Records written by the next version: today's readers take added fields and skip added types.

A rolling upgrade runs two versions at once, so every reader of a Kafka record must decode a
record carrying fields it does not know (ignored) and recognise a record type it does not
know (`UnknownRecordType`: skipped and counted, never dead-lettered). Malformed records of
known types stay errors: they are poison.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from journeys_contracts.audit import decode_audit
from journeys_contracts.commands import StartRun, decode_command
from journeys_contracts.events import RunStarted, decode_event, decode_unknown_event
from journeys_contracts.events_sealed import decode_sealed_event
from journeys_contracts.journeys import decode_journey
from journeys_contracts.wire import UnknownRecordType

RECORDED = Path(__file__).parent / "recorded"
AUDIT = {
    "type": "journeys.audit.access_recorded.v1",
    "auditId": "9b1d7c1e-1f0a-4c55-8f3e-2a6b4d8e0c11",
    "occurredAt": "2025-03-14T09:26:53Z",
    "subject": "dev",
    "action": "runs.read",
    "method": "GET",
    "route": "/journeys/runs/{runId}",
    "status": 200,
    "outcome": "succeeded",
    "requestId": "r-1",
}
Decoder = Callable[[bytes], BaseModel]


def recorded(name: str) -> dict[str, Any]:
    return dict(json.loads((RECORDED / f"{name}.json").read_text()))


def with_next_version_fields(record: dict[str, Any]) -> dict[str, Any]:
    """Add a field everywhere a later version might: the record, its definition, every node
    and every condition."""
    record = {**record, "tenantId": "t-1"}
    if "definition" in record:
        definition = record["definition"]
        nodes = [
            {
                **node,
                "label": "shown in the console",
                **(
                    {"condition": {**node["condition"], "timezone": "UTC"}}
                    if "condition" in node
                    else {}
                ),
            }
            for node in definition["nodes"]
        ]
        record["definition"] = {**definition, "version_note": "v1.1", "nodes": nodes}
    return record


def encode(record: dict[str, Any]) -> bytes:
    return json.dumps(record).encode()


@pytest.mark.parametrize(
    ("name", "decode"),
    [
        ("journeys.command.start_run.v1", decode_command),
        ("journeys.run.started.v1", decode_event),
        ("journeys.journey.defined.v1", decode_journey),
        ("journeys.delay.started.v1", decode_event),
        ("journeys.command.start_run.v2", decode_command),
        ("journeys.run.started.v2", decode_sealed_event),
        ("journeys.message.requested.v2", decode_sealed_event),
    ],
)
def test_records_with_fields_of_the_next_version_decode_as_today(
    name: str, decode: Decoder
) -> None:
    today = decode(encode(recorded(name)))

    assert decode(encode(with_next_version_fields(recorded(name)))) == today


def test_start_run_whose_definition_and_nodes_carry_new_fields_decodes() -> None:
    command = decode_command(
        encode(with_next_version_fields(recorded("journeys.command.start_run.v1")))
    )

    assert isinstance(command, StartRun)
    assert [n.id for n in command.definition.nodes] == ["welcome", "age_check", "wait", "checkin"]
    assert "label" not in command.definition.nodes[0].model_dump()


def test_run_started_keeps_only_the_fields_it_knows_when_written_again() -> None:
    event = decode_event(encode(with_next_version_fields(recorded("journeys.run.started.v1"))))

    assert isinstance(event, RunStarted)
    assert b"label" not in event.to_json()
    assert b"tenantId" not in event.to_json()


@pytest.mark.parametrize(
    ("record_type", "decode", "base"),
    [
        ("journeys.command.pause_run.v1", decode_command, "journeys.command.cancel_run.v1"),
        ("journeys.command.start_run.v3", decode_command, "journeys.command.start_run.v1"),
        ("journeys.run.paused.v1", decode_event, "journeys.run.completed.v1"),
        ("journeys.run.paused.v2", decode_sealed_event, "journeys.run.completed.v2"),
        ("journeys.command.cancel_run.v3", decode_command, "journeys.command.cancel_run.v2"),
        ("journeys.journey.retired.v1", decode_journey, "journeys.journey.defined.v1"),
        ("journeys.audit.export_recorded.v1", decode_audit, None),
    ],
)
def test_a_record_type_of_the_next_version_is_recognised_as_such(
    record_type: str, decode: Decoder, base: str | None
) -> None:
    record = {**(recorded(base) if base else AUDIT), "type": record_type, "pausedBy": "x"}

    with pytest.raises(UnknownRecordType) as raised:
        decode(encode(record))

    assert raised.value.record_type == record_type
    assert isinstance(raised.value, ValueError)


@pytest.mark.parametrize(
    ("record", "decode"),
    [
        ({"type": "journeys.run.paused.v1"}, decode_event),  # any shape: the type is unknown
        ({"type": "journeys.journey.retired.v1"}, decode_journey),
    ],
)
def test_an_unknown_type_needs_no_other_field(record: dict[str, Any], decode: Decoder) -> None:
    with pytest.raises(UnknownRecordType):
        decode(encode(record))


COMPLETED = recorded("journeys.run.completed.v1")


def test_an_event_of_the_next_version_reads_by_its_common_fields_and_keeps_the_rest() -> None:
    record = {**COMPLETED, "type": "journeys.run.paused.v1", "pausedBy": {"team": "7"}}

    event = decode_unknown_event(encode(record))

    assert (str(event.run_id), event.seq, event.type) == (
        COMPLETED["runId"], COMPLETED["seq"], "journeys.run.paused.v1",
    )  # fmt: skip
    # Kept as received, plus the common fields' defaults (`sealedTwin`: false when absent).
    assert json.loads(event.to_json()) == {**record, "sealedTwin": False}


@pytest.mark.parametrize("missing", ["runId", "journeyId", "patientId", "seq", "occurredAt"])
def test_an_event_of_the_next_version_without_a_common_field_cannot_be_read(missing: str) -> None:
    record = {k: v for k, v in COMPLETED.items() if k != missing}

    with pytest.raises(ValidationError):
        decode_unknown_event(encode({**record, "type": "journeys.run.paused.v1"}))


@pytest.mark.parametrize(
    ("value", "decode"),
    [
        (b"{not json", decode_event),
        (encode({**COMPLETED, "seq": 0}), decode_event),
        (encode({**COMPLETED, "type": 5}), decode_event),
        (encode({**COMPLETED, "type": "RunCompleted"}), decode_event),
        (encode({**COMPLETED, "type": "journeys.Run.x.v1"}), decode_event),
        (encode({**COMPLETED, "type": "journeys.run.x"}), decode_event),
        (encode({k: v for k, v in COMPLETED.items() if k != "type"}), decode_event),
        # a known type on the wrong topic was misrouted, not written by a newer version
        (encode(COMPLETED), decode_command),
        (encode(recorded("journeys.command.cancel_run.v1")), decode_event),
        (encode({**AUDIT, "type": "journeys.run.completed.v1"}), decode_audit),
        # a v1 event on the sealed topic, or a v2 one on the clear topic, was misrouted
        (encode(COMPLETED), decode_sealed_event),
        (encode(recorded("journeys.run.completed.v2")), decode_event),
        (encode({**AUDIT, "status": 99}), decode_audit),
    ],
)  # fmt: skip
def test_malformed_records_of_known_types_stay_validation_errors(
    value: bytes, decode: Decoder
) -> None:
    with pytest.raises(ValidationError):
        decode(value)


def test_a_node_type_of_the_next_version_is_malformed_not_skipped() -> None:
    """A new node type changes what a run does: today's executor cannot run it, so the record
    must not decode (a new node type needs readers upgraded first; see contracts/README.md)."""
    record = recorded("journeys.command.start_run.v1")
    nodes = record["definition"]["nodes"]
    record["definition"]["nodes"] = [*nodes[:-1], {**nodes[-1], "type": "WEBHOOK"}]

    with pytest.raises(ValidationError):
        decode_command(encode(record))
