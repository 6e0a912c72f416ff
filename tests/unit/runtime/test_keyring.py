"""The KEK setting: parsing, the active KEK, rotation, and the development key's refusal; the
cache of unwrapped data keys."""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from pydantic import ValidationError

from journeys_runtime.keyring import DEV_KEKS, DataKeys, Keyring, KeyringError, parse_keks
from journeys_runtime.settings import ShreddingSettings
from journeys_runtime.shredding import DataKey, TamperedError, WrappedKey, WrongKeyError

PATIENT = "a" * 64  # shaped like a patient key; no patient behind it


def b64(secret: bytes) -> str:
    return base64.b64encode(secret).decode()


K1, K2 = os.urandom(32), os.urandom(32)
TWO = f"k1={b64(K1)}, k2={b64(K2)}"


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for var in ("JOURNEYS_SHREDDING_KEKS", "JOURNEYS_SHREDDING_ACTIVE_KEK",
                "JOURNEYS_SECRETS_DIR", "JOURNEYS_ENV"):  # fmt: skip
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("JOURNEYS_PATIENT_KEY_SECRET", "p" * 40)
    monkeypatch.setenv("JOURNEYS_ENV", "production")
    return monkeypatch


def test_parses_several_keks_by_id() -> None:
    keks = parse_keks(TWO)
    assert {i: k.secret for i, k in keks.items()} == {"k1": K1, "k2": K2}


@pytest.mark.parametrize(
    "text",
    ["", "k1", f"={b64(K1)}", "k1=", "k1=not base64!", f"k1={b64(K1[:16])}",
     f"k1={b64(K1)},k1={b64(K2)}", f"bad id={b64(K1)}"],
)  # fmt: skip
def test_refuses_a_kek_setting_it_cannot_use(text: str) -> None:
    with pytest.raises(KeyringError) as refused:
        parse_keks(text)
    assert b64(K1) not in str(refused.value)
    assert b64(K1[:16]) not in str(refused.value)


def test_wraps_under_the_active_kek_and_unwraps_under_any_configured() -> None:
    key = DataKey.generate()
    old = Keyring.parse(TWO, "k1").wrap(PATIENT, key)
    rotated = Keyring.parse(TWO, "k2")
    assert rotated.wrap(PATIENT, key).kek_id == "k2"
    assert rotated.unwrap(PATIENT, old).secret == key.secret


def test_a_removed_kek_is_named_when_unwrapping() -> None:
    wrapped = Keyring.parse(TWO, "k1").wrap(PATIENT, DataKey.generate())
    with pytest.raises(WrongKeyError, match="'k1', which is not configured"):
        Keyring.parse(f"k2={b64(K2)}", "k2").unwrap(PATIENT, wrapped)


def test_the_active_kek_must_be_configured() -> None:
    with pytest.raises(KeyringError, match="'k3' is not among"):
        Keyring.parse(TWO, "k3")


def test_production_reads_the_keks_from_the_secrets_dir(
    clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "JOURNEYS_SHREDDING_KEKS").write_text(TWO + "\n")
    clean_env.setenv("JOURNEYS_SECRETS_DIR", str(tmp_path))
    clean_env.setenv("JOURNEYS_SHREDDING_ACTIVE_KEK", "k2")
    keyring = ShreddingSettings().keyring
    assert keyring.active.secret == K2
    assert set(keyring.keks) == {"k1", "k2"}


def test_production_refuses_the_development_kek(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("JOURNEYS_SHREDDING_ACTIVE_KEK", "dev")
    with pytest.raises(ValidationError, match="JOURNEYS_SHREDDING_KEKS must be set"):
        ShreddingSettings()
    renamed = "other=" + DEV_KEKS.partition("=")[2]  # the same public key under another id
    clean_env.setenv("JOURNEYS_SHREDDING_KEKS", f"{renamed},k1={b64(K1)}")
    clean_env.setenv("JOURNEYS_SHREDDING_ACTIVE_KEK", "k1")
    with pytest.raises(ValidationError, match="development key is public"):
        ShreddingSettings()


@pytest.mark.parametrize("environment", ["test", "production"])
def test_outside_development_the_active_kek_is_required(
    clean_env: pytest.MonkeyPatch, environment: str
) -> None:
    clean_env.setenv("JOURNEYS_ENV", environment)
    clean_env.setenv("JOURNEYS_SHREDDING_KEKS", f"k1={b64(K1)}")
    with pytest.raises(ValidationError, match="JOURNEYS_SHREDDING_ACTIVE_KEK must name"):
        ShreddingSettings()


def test_a_short_kek_is_refused_without_quoting_it(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("JOURNEYS_SHREDDING_KEKS", f"k1={b64(K1[:31])}")
    clean_env.setenv("JOURNEYS_SHREDDING_ACTIVE_KEK", "k1")
    with pytest.raises(ValidationError, match="32 bytes") as refused:
        ShreddingSettings()
    assert b64(K1[:31])[4:20] not in str(refused.value)


def test_development_has_a_kek_without_any_setting(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("JOURNEYS_ENV", "development")
    keyring = ShreddingSettings().keyring
    assert keyring.active_id == "dev"
    assert keyring.holds_dev_kek()


@dataclass(frozen=True)
class CountingKeyring(Keyring):
    """A real keyring that notes the key id of every unwrap, so a test sees cache misses."""

    unwrapped: list[str] = field(default_factory=list)

    def unwrap(self, patient_key: str, wrapped: WrappedKey) -> DataKey:
        self.unwrapped.append(wrapped.kid)
        return super().unwrap(patient_key, wrapped)


OTHER = "b" * 64


def counting() -> CountingKeyring:
    return CountingKeyring(parse_keks(TWO), "k1")


def wrapped_for(keyring: Keyring, patient_key: str = PATIENT) -> tuple[DataKey, WrappedKey]:
    key = DataKey.generate()
    return key, keyring.wrap(patient_key, key)


def test_data_keys_unwrap_a_key_once_and_then_hand_out_the_cached_one() -> None:
    keyring = counting()
    key, wrapped = wrapped_for(keyring)
    keys = DataKeys(keyring, size=4)

    assert keys.open(PATIENT, wrapped).secret == key.secret
    assert keys.open(PATIENT, wrapped).secret == key.secret
    assert keyring.unwrapped == [key.kid]


def test_data_keys_keep_at_most_size_keys_dropping_the_least_recently_used() -> None:
    keyring = counting()
    (_, wa), (b, wb), (_, wc) = (wrapped_for(keyring) for _ in range(3))
    keys = DataKeys(keyring, size=2)

    keys.open(PATIENT, wa)
    keys.open(PATIENT, wb)
    keys.open(PATIENT, wa)  # a is now the most recently used
    keys.open(PATIENT, wc)  # so b goes
    assert len(keys) == 2
    keyring.unwrapped.clear()
    keys.open(PATIENT, wa)
    keys.open(PATIENT, wc)
    assert keyring.unwrapped == []
    keys.open(PATIENT, wb)
    assert keyring.unwrapped == [b.kid]
    assert len(keys) == 2


def test_forget_drops_the_named_keys_so_the_next_open_unwraps_again() -> None:
    keyring = counting()
    (a, wa), (_, wb) = wrapped_for(keyring), wrapped_for(keyring)
    keys = DataKeys(keyring)
    keys.open(PATIENT, wa)
    keys.open(PATIENT, wb)

    keys.forget([a.kid, "never-cached"])

    assert len(keys) == 1
    keyring.unwrapped.clear()
    keys.open(PATIENT, wb)
    keys.open(PATIENT, wa)
    assert keyring.unwrapped == [a.kid]


def test_forget_patient_drops_every_key_of_that_patient_and_only_theirs() -> None:
    keyring = counting()
    first, second = wrapped_for(keyring), wrapped_for(keyring)  # two generations of one patient
    other = wrapped_for(keyring, OTHER)
    keys = DataKeys(keyring)
    keys.open(PATIENT, first[1])
    keys.open(PATIENT, second[1])
    keys.open(OTHER, other[1])

    keys.forget_patient(PATIENT)

    assert len(keys) == 1
    keyring.unwrapped.clear()
    keys.open(OTHER, other[1])
    assert keyring.unwrapped == []
    keys.open(PATIENT, first[1])
    assert keyring.unwrapped == [first[0].kid]


def test_a_cached_key_is_not_handed_out_for_another_patient_key() -> None:
    keyring = counting()
    key, wrapped = wrapped_for(keyring)
    keys = DataKeys(keyring)
    keys.open(PATIENT, wrapped)

    with pytest.raises(TamperedError):
        keys.open(OTHER, wrapped)  # unwrapped again, for OTHER, and the KEK refuses it

    assert keyring.unwrapped == [key.kid, key.kid]
    keys.forget_patient(OTHER)
    assert keys.open(PATIENT, wrapped).secret == key.secret
    assert keyring.unwrapped == [key.kid, key.kid]  # still PATIENT's, still cached


def test_a_key_under_a_kek_no_longer_configured_is_refused_even_if_it_was_never_cached() -> None:
    old = Keyring.parse(f"k1={b64(K1)}", "k1")
    _, wrapped = wrapped_for(old)
    keys = DataKeys(Keyring.parse(f"k2={b64(K2)}", "k2"))

    with pytest.raises(WrongKeyError):
        keys.open(PATIENT, wrapped)
    assert len(keys) == 0


def test_clear_forgets_every_key() -> None:
    keyring = counting()
    (a, wa), (b, wb) = wrapped_for(keyring), wrapped_for(keyring, OTHER)
    keys = DataKeys(keyring)
    keys.open(PATIENT, wa)
    keys.open(OTHER, wb)

    keys.clear()

    assert len(keys) == 0
    keyring.unwrapped.clear()
    keys.open(PATIENT, wa)
    keys.open(OTHER, wb)
    assert keyring.unwrapped == [a.kid, b.kid]
