"""A Kafka record nested deeper than its readers parse is a validation error, never a crash.

The executor and the projector decode records with `decode_command` and `decode_event`, and
dead-letter what raises `ValueError` (pydantic's `ValidationError` is one). A record nested
past the parser's 200 levels must land there too: a `RecursionError` would escape that
handling and crash the reader on the same record after every restart.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from journeys_contracts.commands import StartRun, decode_command
from journeys_contracts.definition import JourneyDefinition
from journeys_contracts.events import RunStarted, decode_event
from tests.unit.api.journeys import HIP_REPLACEMENT_JOURNEY

DEFINITION = JourneyDefinition.model_validate(HIP_REPLACEMENT_JOURNEY)
NOW = datetime.now(UTC)
PLACEHOLDER = b'"patientContext":{"id":"p1"}'


def start_run() -> bytes:
    return StartRun(
        run_id=uuid.uuid4(), journey_id=uuid.uuid4(), patient_id="p1",
        patient_context={"id": "p1"}, definition=DEFINITION, requested_at=NOW,
    ).to_json()  # fmt: skip


def run_started() -> bytes:
    return RunStarted(
        run_id=uuid.uuid4(), journey_id=uuid.uuid4(), patient_id="p1", seq=1, occurred_at=NOW,
        journey_name="j", start_node_id="welcome", patient_context={"id": "p1"},
        definition=DEFINITION,
    ).to_json()  # fmt: skip


def with_deep_context(record: bytes, levels: int, opener: bytes, closer: bytes) -> bytes:
    assert PLACEHOLDER in record
    deep = b'"patientContext":{"id":"p1","x":' + opener * levels + b"1" + closer * levels + b"}"
    return record.replace(PLACEHOLDER, deep)


READERS: list[tuple[Callable[[bytes], Any], Callable[[], bytes]]] = [
    (decode_command, start_run),
    (decode_event, run_started),
]
SHAPES = [(b'{"a":', b"}"), (b"[", b"]")]


@pytest.mark.parametrize(("decode", "record"), READERS)
@pytest.mark.parametrize(("opener", "closer"), SHAPES)
@pytest.mark.parametrize("levels", [250, 900, 5_000, 200_000])
def test_a_record_nested_past_the_parser_limit_is_a_validation_error(
    decode: Callable[[bytes], Any], record: Callable[[], bytes], opener: bytes, closer: bytes,
    levels: int,
) -> None:  # fmt: skip
    with pytest.raises(ValidationError) as raised:
        decode(with_deep_context(record(), levels, opener, closer))
    assert isinstance(raised.value, ValueError)  # what the readers dead-letter
    assert "recursion limit" in str(raised.value)


@pytest.mark.parametrize(("decode", "record"), READERS)
def test_a_record_as_deep_as_the_api_allows_decodes(
    decode: Callable[[bytes], Any], record: Callable[[], bytes]
) -> None:
    decoded = decode(with_deep_context(record(), 64, b'{"a":', b"}"))
    assert decoded.patient_context["x"]["a"]["a"] is not None
