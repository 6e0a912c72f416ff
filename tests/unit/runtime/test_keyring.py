"""The KEK setting: parsing, the active KEK, rotation, and the development key's refusal."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from journeys_runtime.keyring import DEV_KEKS, Keyring, KeyringError, parse_keks
from journeys_runtime.settings import ShreddingSettings
from journeys_runtime.shredding import DataKey, WrongKeyError

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
