"""Sealed patient-event commands written straight to JSON are the records the command model
writes: the same fields in the same order with the same text, the same key and headers; the
sealed values open to the same patient id and data. What the direct path does not take goes
through the model, which refuses what it must."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from journeys_api.data_keys import HeldKey
from journeys_api.errors import TooLargeError
from journeys_api.events_body import InboundEvent
from journeys_api.patient_events import Accepted, _fields, _sealed, _SealedRecords, messages
from journeys_api.publisher import Publisher
from journeys_contracts.commands import (
    RecordPatientEventSealed,
    decode_command,
    receipt_id,
    receipt_text,
)
from journeys_contracts.keys import patient_key
from journeys_runtime.shredding import DataKey, KeyEncryptionKey, _json_array, open_sealed, wrap
from journeys_runtime.topics import Topics

KEK = KeyEncryptionKey("kek-1", os.urandom(32))
PUBLISHER = Publisher("127.0.0.1:1", Topics(""), 4, create_topics=False, timeout=1.0)
RECEIVED = datetime(2026, 3, 1, 9, 30, 0, 123456, tzinfo=UTC)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=20)
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=3),
    max_leaves=8,
)  # fmt: skip
zones = st.integers(-14 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m)))
events = st.builds(
    InboundEvent,
    event_id=st.text(min_size=1, max_size=40),
    patient_id=st.text(min_size=1, max_size=40),
    type=st.from_regex(r"[a-z0-9_.-]{1,30}", fullmatch=True),
    occurred_at=st.none() | st.datetimes(timezones=zones),
    data=st.dictionaries(
        st.sampled_from(["clinic_id", "clinicId", "revenue_amount", "treatment_type", "note"])
        | st.text(max_size=8), json_values | st.text(max_size=30), max_size=5,
    ),
)  # fmt: skip


def held_key(key: str) -> HeldKey:
    data_key = DataKey.generate()
    return HeldKey(key, data_key, wrap(KEK, key, data_key))


def opened(value: bytes, held: HeldKey) -> dict[str, Any]:
    record = orjson.loads(value)
    key = record["patientKey"]
    for field in ("patientId", "eventData"):
        record[field] = open_sealed(held.key, key, field, record[field])
    return record


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(event=events, source=st.sampled_from(["api", "import:1", "topic:clinic.events"]))
def test_the_direct_record_is_the_models(event: InboundEvent, source: str) -> None:
    key = patient_key("secret", event.patient_id)
    held = held_key(key)
    item = Accepted(0, event, key)
    direct = _SealedRecords(RECEIVED, source).message(item, held)
    receipt = str(receipt_id(key, event.event_id))
    model = _sealed(item, _fields(item, receipt, RECEIVED, source), held, {})
    expected = PUBLISHER.prepare(key, model, subject=receipt, event_id=receipt)
    if direct is None:  # not taken: only what orjson cannot write (a lone surrogate)
        with pytest.raises(orjson.JSONEncodeError):
            orjson.dumps([event.event_id, event.patient_id, event.data])
        return
    assert list(orjson.loads(direct["value"])) == list(orjson.loads(expected["value"]))
    assert opened(direct["value"], held) == opened(expected["value"], held)
    assert direct["key"] == expected["key"] == key.encode()
    assert [h for h in direct["headers"] if h[0] != "ce_time"] == [
        h for h in expected["headers"] if h[0] != "ce_time"
    ]
    assert isinstance(decode_command(direct["value"]), RecordPatientEventSealed)


def test_what_the_command_refuses_is_still_refused() -> None:
    key = patient_key("secret", "p-1")
    held = {key: held_key(key)}
    naive = InboundEvent("e-1", "p-1", "booked", datetime(2026, 1, 1, 9), {})
    with pytest.raises(ValidationError):
        messages(PUBLISHER, [Accepted(0, naive, key)], RECEIVED, "api", held)
    too_long = InboundEvent("e" * 201, "p-1", "booked", None, {})
    with pytest.raises(ValidationError):
        messages(PUBLISHER, [Accepted(0, too_long, key)], RECEIVED, "api", held)
    trailing = InboundEvent("e-1", "p-1", "booked\n", None, {})  # `$` allows it, the model not
    with pytest.raises(ValidationError):
        messages(PUBLISHER, [Accepted(0, trailing, key)], RECEIVED, "api", held)
    huge = InboundEvent("e-2", "p-1", "booked", None, {"note": "x" * 2_000_000})
    fine = InboundEvent("e-3", "p-1", "booked", None, {})
    with pytest.raises(TooLargeError, match=r"^event 1: "):
        messages(PUBLISHER, [Accepted(0, fine, key), Accepted(1, huge, key)], RECEIVED, "api",
                 held)  # fmt: skip


@given(st.text(max_size=70), st.text(max_size=70))
def test_receipt_text_is_the_receipt_id(key: str, event_id: str) -> None:
    assert receipt_text(key, event_id) == str(receipt_id(key, event_id))


@given(st.lists(st.text(max_size=20), max_size=5))
def test_associated_data_is_the_json_array(parts: list[str]) -> None:
    assert _json_array(parts) == json.dumps(parts).encode()
