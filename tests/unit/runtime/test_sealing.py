"""A record's `.v2` twin: its patient data sealed, everything else as in `.v1`, and back again."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from journeys_contracts import schemas
from journeys_contracts.commands import CancelRun, StartRun
from journeys_contracts.deliveries import DeliveryRequested
from journeys_contracts.events import (
    EVENT_TYPES,
    ConditionEvaluated,
    DelayElapsed,
    DelayStarted,
    EventMatched,
    EventTimedOut,
    EventWaiting,
    MessageDeferred,
    MessageFailed,
    MessageRequested,
    MessageRetrying,
    MessageSent,
    MessageSuppressed,
    NodeEntered,
    PatientErased,
    RunCancelled,
    RunCompleted,
    RunEvent,
    RunExited,
    RunFailed,
    RunStarted,
    type_of,
)
from journeys_contracts.events_sealed import (
    SEALED_EVENT_ADAPTER,
    SEALED_EVENT_TYPES,
    MessageRequestedSealed,
    RunFailedSealed,
    SealedRunEvent,
)
from journeys_contracts.keys import patient_key
from journeys_contracts.sealed import SEALED_FIELDS, SealedValue, clear_type, sealed_type
from journeys_runtime.keyring import DEV_KEK_ID, DEV_KEKS, Keyring
from journeys_runtime.sealing import (
    from_wire,
    open_cancel_run,
    open_delivery,
    open_event,
    open_fields,
    open_start_run,
    open_value,
    seal_cancel_run,
    seal_delivery,
    seal_event,
    seal_fields,
    seal_start_run,
    seal_value,
    to_wire,
)
from journeys_runtime.shredding import DataKey, TamperedError, WrongKeyError, is_sealed
from tests.unit.contracts.strategies import contexts, journeys

KEY = DataKey.generate()
PATIENT = patient_key("s" * 40, "p-1")
OTHER_PATIENT = patient_key("s" * 40, "p-2")
KEYRING = Keyring.parse(DEV_KEKS, DEV_KEK_ID)
RUN, JOURNEY, MESSAGE = UUID(int=1), UUID(int=2), UUID(int=3)
T0 = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
CLEAR_TYPES = [m for m in EVENT_TYPES if m is not PatientErased]

# Text as a patient writes it; no lone surrogates, which a JSON document cannot carry.
texts = st.text(st.characters(exclude_categories=["Cs"]), max_size=30)
optional_texts = st.none() | texts
seqs = st.integers(1, 10_000)


def base(patient_id: str, seq: int) -> dict[str, Any]:
    return {"run_id": RUN, "journey_id": JOURNEY, "patient_id": patient_id, "seq": seq,
            "occurred_at": T0}  # fmt: skip


@st.composite
def run_events(draw: st.DrawFn, model: type | None = None) -> RunEvent:
    """Any v1 run event, with patient data drawn where the type carries it."""
    cls = model or draw(st.sampled_from(CLEAR_TYPES))
    common = base(draw(texts), draw(seqs))
    node = draw(st.sampled_from(["welcome", "age_check", "wait"]))
    fields: dict[type, dict[str, Any]] = {
        RunStarted: {"journey_name": "Recovery", "start_node_id": "welcome",
                     "patient_context": draw(contexts), "definition": draw(journeys(max_nodes=4))},
        NodeEntered: {"node_id": node, "node_type": "MESSAGE"},
        MessageRequested: {"node_id": node, "message_id": MESSAGE, "message": draw(texts)},
        MessageSent: {"node_id": node, "message_id": MESSAGE, "channel": "console"},
        MessageFailed: {"node_id": node, "message_id": MESSAGE, "channel": "sms",
                        "reason": draw(texts)},
        MessageDeferred: {"node_id": node, "message_id": MESSAGE, "message": draw(texts),
                          "channel": "sms", "timer_id": MESSAGE,
                          "due_at": T0 + timedelta(hours=9)},
        MessageSuppressed: {"node_id": node, "message_id": MESSAGE, "channel": "sms",
                            "reason": "consent"},
        MessageRetrying: {"node_id": node, "message_id": MESSAGE, "channel": "webhook",
                          "attempt": 2, "reason": draw(texts), "timer_id": MESSAGE,
                          "due_at": T0 + timedelta(seconds=30)},
        ConditionEvaluated: {"node_id": node, "field": "age", "operator": ">", "result": True,
                             "next_node_id": None, "note": draw(optional_texts)},
        DelayStarted: {"node_id": node, "timer_id": MESSAGE, "duration_seconds": 60.0,
                       "due_at": T0 + timedelta(minutes=1)},
        DelayElapsed: {"node_id": node, "timer_id": MESSAGE, "due_at": T0, "fired_at": T0},
        RunCompleted: {"last_node_id": node},
        RunFailed: {"node_id": None, "reason": draw(texts)},
        RunCancelled: {"node_id": node, "reason": draw(optional_texts),
                       "cancelled_timer_id": draw(st.none() | st.just(MESSAGE)),
                       "exit_event_id": draw(st.none() | st.just("appt-1-x")),
                       "exit_event_type": draw(st.none() | st.just("appointment.cancelled"))},
        EventWaiting: {"node_id": node, "event_type": "intake_form.submitted",
                       "timer_id": MESSAGE, "timeout_seconds": 3600.0,
                       "due_at": T0 + timedelta(hours=1), "lookback_seconds": 86400.0},
        EventMatched: {"node_id": node, "event_id": "form-1", "event_type": "intake_form.submitted",
                       "receipt_id": MESSAGE, "event_occurred_at": T0,
                       "event_data": draw(contexts), "lookback": draw(st.booleans()),
                       "cancelled_timer_id": draw(st.none() | st.just(MESSAGE))},
        EventTimedOut: {"node_id": node, "timer_id": MESSAGE, "due_at": T0, "fired_at": T0},
        RunExited: {"node_id": node, "event_id": "appt-1-x", "event_type": "appointment.cancelled",
                    "receipt_id": MESSAGE},
    }  # fmt: skip
    return cls(**common, **fields[cls])


def wire(record: Any) -> dict[str, Any]:
    return dict(json.loads(record.to_json()))


def schema_of(type_name: str) -> Draft202012Validator:
    kind = ("commands" if ".command." in type_name
            else "deliveries" if ".delivery." in type_name else "events")  # fmt: skip
    path = schemas.SCHEMAS_DIR / kind / f"{type_name}.json"
    return Draft202012Validator(json.loads(path.read_text()))


def test_the_examples_cover_every_run_event_type() -> None:
    assert {type_of(m) for m in CLEAR_TYPES} == {clear_type(type_of(m)) for m in SEALED_EVENT_TYPES}


@given(run_events())
def test_every_run_event_opens_from_its_sealed_twin_as_it_was(event: RunEvent) -> None:
    sealed = seal_event(event, KEY, PATIENT)

    assert sealed.type == sealed_type(event.type)
    assert sealed.patient_key == PATIENT
    assert open_event(sealed, KEY) == event.model_copy(update={"sealed_twin": True})


@given(run_events())
def test_the_sealed_twin_validates_as_its_v2_model_and_schema(event: RunEvent) -> None:
    data = wire(seal_event(event, KEY, PATIENT))

    assert SEALED_EVENT_ADAPTER.validate_python(data).type == data["type"]
    assert list(schema_of(data["type"]).iter_errors(data)) == []
    assert "sealedTwin" not in data


@given(run_events())
def test_every_field_that_may_hold_patient_data_is_sealed_and_nothing_else_changes(
    event: RunEvent,
) -> None:
    clear = wire(event)
    sealed = seal_fields(clear, KEY, PATIENT)

    for name in SEALED_FIELDS:
        if clear.get(name) is not None:
            assert is_sealed(sealed[name]), name
            assert SealedValue.model_validate(sealed[name]).kid == KEY.kid
            assert open_value(KEY, PATIENT, name, sealed[name]) == clear[name]
    kept = set(clear) - set(SEALED_FIELDS) - {"type", "sealedTwin"}
    assert {k: sealed[k] for k in kept} == {k: clear[k] for k in kept}


@pytest.mark.parametrize("model", CLEAR_TYPES, ids=type_of)
@settings(max_examples=25)
@given(data=st.data())
def test_no_clear_value_of_a_sealed_field_is_in_the_sealed_bytes(
    model: type, data: st.DataObject
) -> None:
    """Markers no base64 text can contain (`-`), in every field that holds patient data."""
    marker = f"-{uuid4().hex[:12]}-"
    event = data.draw(run_events(model))
    updates: dict[str, Any] = {
        name: f"{name}{marker}" for name in ("patient_id", "message", "reason", "note")
        if name in type(event).model_fields
    }  # fmt: skip
    if isinstance(event, RunStarted):
        updates["patient_context"] = {"id": f"id{marker}", "name": f"name{marker}"}
    event = event.model_copy(update=updates)

    assert marker.encode() in event.to_json()  # the marker is there to be hidden
    by_seal_fields = json.dumps(seal_fields(wire(event), KEY, PATIENT)).encode()
    assert marker.encode() not in by_seal_fields
    assert marker.encode() not in seal_event(event, KEY, PATIENT).to_json()


def test_a_sealed_value_moved_to_another_field_does_not_open() -> None:
    requested = seal_event(
        MessageRequested(**base("p-1", 3), node_id="n", message_id=MESSAGE, message="Hello"),
        KEY, PATIENT,
    )  # fmt: skip
    assert isinstance(requested, MessageRequestedSealed)
    failed = seal_event(RunFailed(**base("p-1", 4), node_id="n", reason="x"), KEY, PATIENT)
    assert isinstance(failed, RunFailedSealed)

    moved = failed.model_copy(update={"reason": requested.message})
    with pytest.raises(TamperedError):
        open_event(moved, KEY)
    swapped = requested.model_copy(update={"patient_id": requested.message})
    with pytest.raises(TamperedError):
        open_event(swapped, KEY)


def test_a_sealed_value_moved_to_another_patient_does_not_open() -> None:
    event = RunCompleted(**base("p-1", 5), last_node_id=None)
    sealed = seal_event(event, KEY, PATIENT)

    with pytest.raises(TamperedError):
        open_event(sealed.model_copy(update={"patient_key": OTHER_PATIENT}), KEY)
    with pytest.raises(TamperedError):
        open_fields({**wire(sealed), "patientKey": OTHER_PATIENT}, KEY)


def test_a_sealed_value_does_not_open_under_another_data_key() -> None:
    sealed = seal_event(RunCompleted(**base("p-1", 5), last_node_id=None), KEY, PATIENT)

    with pytest.raises(WrongKeyError):
        open_event(sealed, DataKey.generate())


@pytest.mark.parametrize(
    "event",
    [
        RunCancelled(**base("p-1", 7), node_id="wait", reason=None),
        ConditionEvaluated(**base("p-1", 4), node_id="c", field="age", operator=">",
                           result=False, next_node_id=None, note=None),
    ],
    ids=["reason", "note"],
)  # fmt: skip
def test_a_null_reason_or_note_stays_null(event: RunEvent) -> None:
    sealed: SealedRunEvent = seal_event(event, KEY, PATIENT)
    data = wire(sealed)
    name = "reason" if isinstance(event, RunCancelled) else "note"

    assert data[name] is None
    assert wire(open_event(sealed, KEY))[name] is None


@given(context=contexts, patient_id=texts, definition=journeys(max_nodes=4))
def test_start_run_opens_from_its_sealed_twin_with_its_wrapped_key(
    context: dict[str, Any], patient_id: str, definition: Any
) -> None:
    command = StartRun(run_id=RUN, journey_id=JOURNEY, patient_id=patient_id,
                       patient_context=context, definition=definition, requested_at=T0)  # fmt: skip
    wrapped = KEYRING.wrap(PATIENT, KEY)

    sealed = seal_start_run(command, KEY, wrapped, PATIENT)
    data = wire(sealed)

    assert sealed.type == "journeys.command.start_run.v2"
    assert list(schema_of(sealed.type).iter_errors(data)) == []
    assert is_sealed(data["patientId"])
    assert is_sealed(data["patientContext"])
    assert sealed.data_key == to_wire(wrapped)
    carried = KEYRING.unwrap(sealed.patient_key, from_wire(sealed.data_key))
    assert open_start_run(sealed, carried) == command


@pytest.mark.parametrize("reason", ["patient asked to stop: call 555-0100", None])
def test_cancel_run_opens_from_its_sealed_twin(reason: str | None) -> None:
    command = CancelRun(run_id=RUN, requested_at=T0, reason=reason)

    sealed = seal_cancel_run(command, KEY, PATIENT)
    data = wire(sealed)

    assert sealed.type == "journeys.command.cancel_run.v2"
    assert list(schema_of(sealed.type).iter_errors(data)) == []
    assert (data["reason"] is None) == (reason is None)
    assert reason is None or (is_sealed(data["reason"]) and reason.encode() not in sealed.to_json())
    assert open_cancel_run(sealed, KEY) == command


@given(patient_id=texts, message=texts.filter(bool), channel=st.sampled_from([None, "webhook"]))
def test_a_delivery_request_opens_from_its_sealed_twin_with_its_wrapped_key(
    patient_id: str, message: str, channel: Any
) -> None:
    request = DeliveryRequested(
        message_id=MESSAGE, run_id=RUN, journey_id=JOURNEY, node_id="hello", patient_key=PATIENT,
        patient_id=patient_id, channel=channel, message=message, attempt=2, requested_at=T0,
    )  # fmt: skip
    wrapped = to_wire(KEYRING.wrap(PATIENT, KEY))

    sealed = seal_delivery(request, KEY, wrapped)
    data = wire(sealed)

    assert sealed.type == "journeys.delivery.requested.v2"
    assert list(schema_of(sealed.type).iter_errors(data)) == []
    assert is_sealed(data["patientId"])
    assert is_sealed(data["message"])
    carried = KEYRING.unwrap(sealed.patient_key, from_wire(sealed.data_key))
    assert open_delivery(sealed, carried) == request


def test_a_sealed_value_opens_only_for_its_field_and_patient() -> None:
    sealed = seal_value(KEY, PATIENT, "message", {"text": "Hello"})

    assert open_value(KEY, PATIENT, "message", sealed) == {"text": "Hello"}
    for patient, field in [(OTHER_PATIENT, "message"), (PATIENT, "reason")]:
        with pytest.raises(TamperedError):
            open_value(KEY, patient, field, sealed)
