"""Sealed patient data opens only with its data key, for its patient key and field, unchanged."""

from __future__ import annotations

import base64
import json
import math
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from journeys_runtime.shredding import (
    DataKey,
    KeyEncryptionKey,
    MalformedError,
    ShreddingError,
    TamperedError,
    WrappedKey,
    WrongKeyError,
    is_sealed,
    kid_of,
    open_sealed,
    seal,
    unwrap,
    wrap,
)

KEY = DataKey.generate()
KEK = KeyEncryptionKey.from_base64("kek-1", base64.b64encode(b"k" * 32).decode())
PATIENT = "a" * 64

patient_keys = st.text(alphabet="0123456789abcdef", min_size=64, max_size=64)
field_names = st.sampled_from(["patientId", "patientContext", "message", "reason", "note"])
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text()
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
    max_leaves=20,
)  # fmt: skip


def _blob(envelope: dict[str, str]) -> bytes:
    return base64.b64decode(envelope["ct"])


def _with_blob(envelope: dict[str, str], blob: bytes) -> dict[str, str]:
    return {**envelope, "ct": base64.b64encode(blob).decode()}


@given(json_values, patient_keys, field_names)
def test_a_sealed_value_opens_to_the_same_value(value: Any, patient: str, name: str) -> None:
    envelope = seal(KEY, patient, name, value)
    assert is_sealed(envelope)
    assert kid_of(envelope) == KEY.kid
    assert open_sealed(KEY, patient, name, envelope) == value


def test_integers_just_past_64_bits_open_as_the_same_integers() -> None:
    # orjson reads -2**63 - 1 as a float instead of refusing it (found by the property above).
    for value in (-(2**63) - 1, 2**64, [2**70, "x"], {"n": -(2**63) - 1}):
        assert open_sealed(KEY, "p", "f", seal(KEY, "p", "f", value)) == value
    assert open_sealed(KEY, "p", "f", seal(KEY, "p", "f", "0" * 30)) == "0" * 30


@given(st.text(min_size=8), patient_keys)
def test_a_sealed_envelope_does_not_contain_the_value(text: str, patient: str) -> None:
    stored = json.dumps(seal(KEY, patient, "patientId", text), ensure_ascii=False)
    assert text not in stored
    assert json.dumps(text)[1:-1] not in stored
    assert patient not in stored


def test_sealing_twice_gives_different_envelopes() -> None:
    first, second = (seal(KEY, PATIENT, "patientId", "patient-123") for _ in range(2))
    assert first["ct"] != second["ct"]
    assert _blob(first)[:12] != _blob(second)[:12]  # a fresh nonce each time


def test_a_lone_surrogate_round_trips() -> None:
    value = {"name": "\ud800x", "\udfff": ["é", "日本"]}
    assert open_sealed(KEY, PATIENT, "patientContext", seal(KEY, PATIENT, "patientContext",
                                                                value)) == value  # fmt: skip


@pytest.mark.parametrize(
    ("value", "opened"),
    [
        (2**70, 2**70),  # past 64 bits
        ({"n": [-(2**65), None, 1.5e300]}, {"n": [-(2**65), None, 1.5e300]}),
        ({1: "one", "2": None}, {"1": "one", "2": None}),  # JSON keys are strings
    ],
)
def test_what_a_fast_encoder_refuses_still_round_trips(value: Any, opened: Any) -> None:
    assert open_sealed(KEY, PATIENT, "patientContext",
                       seal(KEY, PATIENT, "patientContext", value)) == opened  # fmt: skip


def test_refuses_to_seal_what_json_cannot_hold() -> None:
    with pytest.raises(TypeError):
        seal(KEY, PATIENT, "patientContext", {"at": datetime.now(UTC)})


@pytest.mark.parametrize("value", [math.nan, math.inf, {"age": -math.inf}, [None, math.nan]])
def test_refuses_to_seal_non_finite_numbers(value: Any) -> None:
    with pytest.raises(ValueError, match="not JSON compliant"):
        seal(KEY, PATIENT, "patientContext", value)


@given(json_values, st.data())
def test_any_changed_bit_is_detected(value: Any, data: st.DataObject) -> None:
    envelope = seal(KEY, PATIENT, "patientContext", value)
    blob = bytearray(_blob(envelope))
    index = data.draw(st.integers(0, len(blob) - 1), label="byte")
    blob[index] ^= 1 << data.draw(st.integers(0, 7), label="bit")
    with pytest.raises(TamperedError):
        open_sealed(KEY, PATIENT, "patientContext", _with_blob(envelope, bytes(blob)))


@given(json_values, st.data())
def test_a_cut_or_extended_ciphertext_is_refused(value: Any, data: st.DataObject) -> None:
    blob = _blob(envelope := seal(KEY, PATIENT, "message", value))
    cut = data.draw(st.integers(0, len(blob) - 1), label="keep")
    extra = data.draw(st.binary(min_size=1, max_size=16), label="extra")
    for changed in (blob[:cut], blob + extra):
        with pytest.raises((TamperedError, MalformedError)):
            open_sealed(KEY, PATIENT, "message", _with_blob(envelope, changed))


@given(json_values, patient_keys, patient_keys)
def test_a_value_sealed_for_one_patient_does_not_open_for_another(
    value: Any, patient: str, other: str
) -> None:
    assume(patient != other)
    envelope = seal(KEY, patient, "patientContext", value)
    with pytest.raises(TamperedError):
        open_sealed(KEY, other, "patientContext", envelope)


@given(json_values, field_names, field_names)
def test_a_value_sealed_for_one_field_does_not_open_as_another(
    value: Any, name: str, other: str
) -> None:
    assume(name != other)
    envelope = seal(KEY, PATIENT, name, value)
    with pytest.raises(TamperedError):
        open_sealed(KEY, PATIENT, other, envelope)


@given(json_values)
def test_a_value_opens_only_with_the_key_that_sealed_it(value: Any) -> None:
    envelope = seal(KEY, PATIENT, "patientId", value)
    with pytest.raises(WrongKeyError):
        open_sealed(DataKey.generate(), PATIENT, "patientId", envelope)
    # A new key that claims the erased key's id still opens nothing.
    impostor = DataKey(kid=KEY.kid, secret=DataKey.generate().secret)
    with pytest.raises(TamperedError):
        open_sealed(impostor, PATIENT, "patientId", envelope)


def test_the_key_id_is_bound_to_the_ciphertext() -> None:
    envelope = seal(KEY, PATIENT, "patientId", "patient-123")
    relabelled = DataKey(kid="another-id", secret=KEY.secret)
    with pytest.raises(TamperedError):
        open_sealed(relabelled, PATIENT, "patientId", {**envelope, "kid": "another-id"})


@given(json_values)
def test_anything_but_an_envelope_raises_only_shredding_errors(value: Any) -> None:
    with pytest.raises(ShreddingError):
        open_sealed(KEY, PATIENT, "patientId", value)


@pytest.mark.parametrize(
    "envelope",
    [
        {"enc": "v2", "kid": KEY.kid, "ct": ""},
        {"enc": "v1", "kid": KEY.kid},
        {"enc": "v1", "kid": KEY.kid, "ct": "AAAA", "extra": "x"},
        {"enc": "v1", "kid": KEY.kid, "ct": "not base64!"},
        {"enc": "v1", "kid": KEY.kid, "ct": 12},
        {"enc": "v1", "kid": "", "ct": "AAAA"},
        {"enc": "v1", "kid": "a/b", "ct": "AAAA"},
        {"enc": "v1", "kid": KEY.kid, "ct": "AAAA"},
        {"enc": "v1", "kid": KEY.kid, "ct": "ünïcode"},
    ],
)
def test_malformed_envelopes_are_refused(envelope: Any) -> None:
    with pytest.raises(MalformedError):
        open_sealed(KEY, PATIENT, "patientId", envelope)


def test_errors_quote_no_value_or_patient_key() -> None:
    envelope = seal(KEY, PATIENT, "patientId", "patient-123")
    with pytest.raises(TamperedError) as caught:
        open_sealed(KEY, "b" * 64, "patientId", envelope)
    assert "patient-123" not in str(caught.value)
    assert PATIENT not in str(caught.value)
    assert "b" * 64 not in str(caught.value)


def test_keys_never_show_their_secret() -> None:
    for key in (KEY, KEK):
        assert repr(key.secret) not in repr(key)
        assert key.secret.hex() not in repr(key)


def test_generated_keys_are_fresh() -> None:
    keys = [DataKey.generate() for _ in range(50)]
    assert len({k.kid for k in keys}) == 50
    assert len({k.secret for k in keys}) == 50


@given(patient_keys)
def test_a_wrapped_key_unwraps_to_the_same_key(patient: str) -> None:
    key = DataKey.generate()
    stored = json.loads(json.dumps(wrap(KEK, patient, key).to_json()))
    assert unwrap(KEK, patient, WrappedKey.from_json(stored)) == key


def test_a_wrapped_key_holds_no_key_material_in_clear() -> None:
    wrapped = wrap(KEK, PATIENT, KEY)
    assert KEY.secret not in wrapped.wrapped
    assert KEY.secret.hex() not in json.dumps(wrapped.to_json())


@given(patient_keys, patient_keys)
def test_a_wrapped_key_unwraps_only_for_its_patient(patient: str, other: str) -> None:
    assume(patient != other)
    with pytest.raises(TamperedError):
        unwrap(KEK, other, wrap(KEK, patient, KEY))


@given(st.data())
def test_a_changed_wrapped_key_is_refused(data: st.DataObject) -> None:
    wrapped = wrap(KEK, PATIENT, KEY)
    blob = bytearray(wrapped.wrapped)
    blob[data.draw(st.integers(0, len(blob) - 1))] ^= 1 << data.draw(st.integers(0, 7))
    with pytest.raises(TamperedError):
        unwrap(KEK, PATIENT, WrappedKey(wrapped.kid, wrapped.kek_id, bytes(blob)))


def test_a_wrapped_key_unwraps_only_under_its_kek_and_its_own_id() -> None:
    wrapped = wrap(KEK, PATIENT, KEY)
    same_id = KeyEncryptionKey("kek-1", b"z" * 32)
    with pytest.raises(TamperedError):
        unwrap(same_id, PATIENT, wrapped)
    with pytest.raises(WrongKeyError):
        unwrap(KeyEncryptionKey("kek-2", KEK.secret), PATIENT, wrapped)
    with pytest.raises(TamperedError):  # a wrapped key relabelled with another key id
        unwrap(KEK, PATIENT, WrappedKey("another-id", wrapped.kek_id, wrapped.wrapped))
    with pytest.raises(MalformedError):
        unwrap(KEK, PATIENT, WrappedKey(wrapped.kid, wrapped.kek_id, wrapped.wrapped[:-1]))


@pytest.mark.parametrize(
    "stored",
    [
        None,
        [],
        {"kid": KEY.kid, "kek": "kek-1"},
        {"kid": KEY.kid, "kek": "kek-1", "wrapped": "%%"},
        {"kid": KEY.kid, "kek": "kek-1", "wrapped": 5},
        {"kid": "", "kek": "kek-1", "wrapped": "AAAA"},
    ],
)
def test_malformed_wrapped_keys_are_refused(stored: Any) -> None:
    with pytest.raises(MalformedError):
        WrappedKey.from_json(stored)


@pytest.mark.parametrize(
    ("text", "error"),
    [("not base64!", "must be base64"), (base64.b64encode(b"short").decode(), "is 32 bytes")],
)
def test_a_kek_setting_must_be_32_bytes_of_base64(text: str, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        KeyEncryptionKey.from_base64("kek-1", text)
