"""Recorded payloads, frozen as producers wrote them: they must keep decoding forever.

Never edit a file under `recorded/`; add new ones when a type or version is added.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator, FormatChecker
from pydantic import BaseModel, ValidationError

from journeys_contracts import schemas
from journeys_contracts.commands import (
    COMMAND_TYPES,
    CancelRunSealed,
    RecordPatientEvent,
    RecordPatientEventSealed,
    StartRunSealed,
    decode_command,
)
from journeys_contracts.deliveries import DELIVERY_TYPES, DeliveryRequestedSealed, decode_delivery
from journeys_contracts.events import EVENT_TYPES, decode_event, type_of
from journeys_contracts.events_sealed import SEALED_EVENT_TYPES, decode_sealed_event
from journeys_contracts.journeys import decode_journey
from journeys_contracts.sealed import SEALED_FIELDS, clear_type
from journeys_runtime.sealing import (
    from_wire,
    open_cancel_run,
    open_delivery,
    open_event,
    open_fields,
    open_start_run,
)
from journeys_runtime.shredding import is_sealed
from tests.contract.record_sealed import KEYRING, PATIENT_KEY

RECORDED = Path(__file__).parent / "recorded"
FILES = sorted(p.name for p in RECORDED.glob("*.json"))
KIND = {c.name: c.kind for c in schemas.contracts()}
DECODERS: dict[str, Callable[[bytes], BaseModel]] = {
    "events": decode_event,
    "commands": decode_command,
    "journeys": decode_journey,
    "deliveries": decode_delivery,
}
SEALED_EVENTS = {type_of(m) for m in SEALED_EVENT_TYPES}
SEALED_COMMANDS = {type_of(StartRunSealed), type_of(CancelRunSealed),
                   type_of(RecordPatientEventSealed), type_of(DeliveryRequestedSealed)}  # fmt: skip
SEALED_FILES = [f for f in FILES if f.removesuffix(".json") in SEALED_EVENTS | SEALED_COMMANDS]


def decoder(type_name: str) -> Callable[[bytes], BaseModel]:
    """`journeys.events.v2` has its own decoder; every other topic one per kind."""
    return decode_sealed_event if type_name in SEALED_EVENTS else DECODERS[KIND[type_name]]


FORMATS = FormatChecker()


@FORMATS.checks("date-time", raises=ValueError)
def _timezone_aware(value: object) -> bool:
    """RFC 3339 date-times carry an offset; the wire's UtcDatetime rejects naive ones too."""
    return not isinstance(value, str) or datetime.fromisoformat(value).tzinfo is not None


def validator(schema_dir: Path, type_name: str) -> Draft202012Validator:
    schema = json.loads((schema_dir / KIND[type_name] / f"{type_name}.json").read_text())
    return Draft202012Validator(schema, format_checker=FORMATS)


def recorded(name: str) -> tuple[str, bytes, dict[str, Any]]:
    raw = (RECORDED / name).read_bytes()
    return name.removesuffix(".json"), raw, json.loads(raw)


def test_every_event_and_command_type_has_a_recorded_payload() -> None:
    types = {type_of(m) for m in (*EVENT_TYPES, *SEALED_EVENT_TYPES, *COMMAND_TYPES,
                                  *DELIVERY_TYPES)}  # fmt: skip
    assert types <= {f.removesuffix(".json") for f in FILES}


@pytest.mark.parametrize("name", FILES)
def test_recorded_payload_decodes_and_keeps_its_values(name: str) -> None:
    type_name, raw, value = recorded(name)

    decoded = decoder(type_name)(raw)

    assert decoded.model_dump()["type"] == type_name
    reencoded = json.loads(decoded.model_dump_json(by_alias=True))
    assert {k: reencoded[k] for k in value} == value


@pytest.mark.parametrize("name", FILES)
@pytest.mark.parametrize("schema_dir", [schemas.SCHEMAS_DIR, schemas.SCHEMAS_DIR / "published/v1"])
def test_recorded_payload_is_valid_against_its_schema(name: str, schema_dir: Path) -> None:
    type_name, _, value = recorded(name)
    errors = [e.message for e in validator(schema_dir, type_name).iter_errors(value)]
    assert errors == []


@pytest.mark.parametrize("name", FILES)
def test_schema_and_decoder_both_reject_a_record_missing_a_required_field(name: str) -> None:
    type_name, _, value = recorded(name)
    check = validator(schemas.SCHEMAS_DIR, type_name)
    decode = decoder(type_name)
    for field in check.schema["required"]:
        broken = {k: v for k, v in value.items() if k != field}
        assert not check.is_valid(broken), field
        with pytest.raises(ValidationError):
            decode(json.dumps(broken).encode())


def test_schema_and_decoder_both_reject_a_timestamp_without_timezone() -> None:
    _, _, value = recorded("journeys.run.completed.v1.json")
    naive = {**value, "occurredAt": "2025-03-14T09:26:53"}
    assert not validator(schemas.SCHEMAS_DIR, "journeys.run.completed.v1").is_valid(naive)
    with pytest.raises(ValidationError):
        decode_event(json.dumps(naive).encode())


def test_sealed_payloads_were_recorded_for_every_sealed_type() -> None:
    assert {f.removesuffix(".json") for f in SEALED_FILES} == SEALED_EVENTS | SEALED_COMMANDS


@pytest.mark.parametrize("name", SEALED_FILES)
def test_sealed_payload_opens_to_its_recorded_clear_twin(name: str) -> None:
    """Every `.v2` payload was sealed from its `.v1` twin by the real sealing functions, under
    the data key the recorded `start_run.v2` carries wrapped under the development KEK."""
    type_name, raw, value = recorded(name)
    _, _, twin = recorded(f"{clear_type(type_name)}.json")
    start = decode_command(recorded("journeys.command.start_run.v2.json")[1])
    assert isinstance(start, StartRunSealed)
    key = KEYRING.unwrap(start.patient_key, from_wire(start.data_key))

    decoded = decoder(type_name)(raw)
    if isinstance(decoded, StartRunSealed):
        opened: BaseModel = open_start_run(decoded, key)
    elif isinstance(decoded, CancelRunSealed):
        opened = open_cancel_run(decoded, key)
    elif isinstance(decoded, DeliveryRequestedSealed):
        opened = open_delivery(decoded, key)
    elif isinstance(decoded, RecordPatientEventSealed):
        # As the executor opens it: the clear command names its patient key too.
        clear = open_fields(decoded.model_dump(mode="json", by_alias=True), key)
        del clear["dataKey"]
        opened = RecordPatientEvent.model_validate({**clear, "patientKey": decoded.patient_key})
    else:
        opened = open_event(decoded, key)  # type: ignore[arg-type]
        twin = {**twin, "sealedTwin": True}  # how open_event hands a sealed run's event over

    assert value["patientKey"] == PATIENT_KEY
    assert opened == decoder(clear_type(type_name))(json.dumps(twin).encode())
    for field in SEALED_FIELDS:
        if twin.get(field) is None:
            assert value.get(field) is None, field  # a null reason or note stays null
        else:
            assert is_sealed(value[field]), field
            assert json.dumps(twin[field])[1:-1].encode() not in raw, field
