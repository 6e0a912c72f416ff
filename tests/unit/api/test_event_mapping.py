"""Reading an event at JSON pointers (RFC 6901): escapes, array indices, what is missing, and
errors that name the pointer, never the value."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from journeys_api.event_mapping import (
    At,
    EventMapping,
    Given,
    MappingFailedError,
    read,
    resolve,
    sources_of,
)

DOCUMENT: dict[str, Any] = {
    "a/b": {"m~n": 1}, "~1": "tilde one", "list": [{"id": "p-1"}, {"id": "p-2"}], "": "empty key",
    "event": {"id": 4711, "kind": "form.submitted", "at": "2026-12-03T10:00:00+01:00"},
}  # fmt: skip


FOUND = [("/a~1b/m~0n", 1), ("/~01", "tilde one"), ("/list/1/id", "p-2"), ("/", "empty key"),
         ("", DOCUMENT)]  # fmt: skip


@pytest.mark.parametrize(("pointer", "found"), FOUND)
def test_a_pointer_finds_what_rfc_6901_says(pointer: str, found: Any) -> None:
    assert resolve(DOCUMENT, pointer) == found


@pytest.mark.parametrize("pointer", ["/list/01/id", "/list/2", "/list/-", "/event/id/x", "/nope"])
def test_a_pointer_to_nothing_finds_nothing_and_says_where_it_looked(pointer: str) -> None:
    sources = {
        "eventId": At(pointer), "patientId": At("/list/0/id"),
        "type": Given("form.submitted", "typeConstant"), "data": At("/a~1b"),
    }  # fmt: skip
    with pytest.raises(MappingFailedError) as caught:
        read(DOCUMENT, sources)
    assert [str(e) for e in caught.value.errors] == [f"eventId at {pointer}: missing"]


def test_a_mapping_reads_a_numeric_id_as_its_text_and_the_time_in_utc() -> None:
    pointers = {"eventId": "/event/id", "patientId": "/list/0/id", "type": "/event/kind",
                "occurredAt": "/event/at", "data": "/a~1b"}  # fmt: skip
    mapping = EventMapping.model_validate(pointers)
    event = read(DOCUMENT, sources_of(mapping))
    assert (event.event_id, event.patient_id, event.type) == ("4711", "p-1", "form.submitted")
    assert event.occurred_at == datetime(2026, 12, 3, 9, tzinfo=UTC)
    assert event.data == {"m~n": 1}


def test_errors_name_the_pointer_and_never_the_value() -> None:
    document = {"who": "x\x00y", "kind": "Not A Type!", "data": {"n": "secret\x00"}}
    mapping = EventMapping(patient_id="/who", type="/kind", data="/data")
    with pytest.raises(MappingFailedError) as caught:
        read(document, sources_of(mapping, Given("msg_1", "header webhook-id")))
    text = str(caught.value)
    assert "type at /kind: String should match pattern" in text
    assert "Not A Type" not in text
    assert "secret" not in text


def test_a_mapping_names_exactly_one_type_and_valid_pointers() -> None:
    with pytest.raises(ValidationError, match="exactly one of type"):
        EventMapping(patient_id="/p")
    with pytest.raises(ValidationError, match="exactly one of type"):
        EventMapping(patient_id="/p", type="/t", type_constant="a.b")
    with pytest.raises(ValidationError, match="JSON pointer"):
        EventMapping(patient_id="p", type="/t")
    with pytest.raises(ValidationError, match="escaped"):
        EventMapping(patient_id="/a~2", type="/t")
