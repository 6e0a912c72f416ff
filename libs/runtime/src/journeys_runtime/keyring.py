"""The deployment's key-encryption keys: parsed from a setting, one active, all able to unwrap.

`JOURNEYS_SHREDDING_KEKS` holds `id=base64[,id=base64...]`, so an old KEK can stay next to
a new one (which wraps every new data key) for as long as keys wrapped under the old one
are in use (nothing re-wraps them yet); `JOURNEYS_SHREDDING_ACTIVE_KEK` names the one that
wraps new data keys. The crypto itself is in `journeys_runtime.shredding`; this module only
chooses the KEK. Its errors name KEK ids (not secret), never a key or a patient key.
"""

from __future__ import annotations

import base64
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass

from journeys_runtime.shredding import (
    DataKey,
    KeyEncryptionKey,
    WrappedKey,
    WrongKeyError,
    unwrap,
    wrap,
)

DEV_KEK_ID = "dev"
# Public, so refused in every environment but development (see `ShreddingSettings`).
DEV_KEK_SECRET = b"dev-only-kek-never-in-production"
DEV_KEKS = f"{DEV_KEK_ID}={base64.b64encode(DEV_KEK_SECRET).decode()}"


class KeyringError(ValueError):
    """The KEK setting cannot be used; the message names no key."""


def parse_keks(text: str) -> dict[str, KeyEncryptionKey]:
    """`id=base64[,id=base64...]`, each key 32 bytes, ids unique; blanks around parts ignored."""
    keks: dict[str, KeyEncryptionKey] = {}
    for i, part in enumerate(text.split(","), start=1):
        kek_id, sep, encoded = part.strip().partition("=")
        kek_id = kek_id.strip()
        if not sep or not kek_id or not encoded.strip():
            raise KeyringError(f"key-encryption key {i} is not written id=base64")
        if kek_id in keks:
            raise KeyringError(f"key-encryption key id {kek_id!r} is given twice")
        try:
            keks[kek_id] = KeyEncryptionKey.from_base64(kek_id, encoded)
        except ValueError as exc:  # messages of shredding name no key
            raise KeyringError(f"key-encryption key {i}: {exc}") from None
    return keks


@dataclass(frozen=True)
class Keyring:
    """Wraps new data keys under the active KEK; unwraps under whichever KEK wrapped them."""

    keks: dict[str, KeyEncryptionKey]
    active_id: str

    def __post_init__(self) -> None:
        if self.active_id not in self.keks:
            raise KeyringError(
                f"the active key-encryption key {self.active_id!r} is not among {sorted(self.keks)}"
            )

    @classmethod
    def parse(cls, keks: str, active_id: str) -> Keyring:
        return cls(parse_keks(keks), active_id)

    @property
    def active(self) -> KeyEncryptionKey:
        return self.keks[self.active_id]

    def holds_dev_kek(self) -> bool:
        """Whether any KEK is the public development one, whatever its id."""
        return any(k.secret == DEV_KEK_SECRET for k in self.keks.values())

    def wrap(self, patient_key: str, key: DataKey) -> WrappedKey:
        return wrap(self.active, patient_key, key)

    def unwrap(self, patient_key: str, wrapped: WrappedKey) -> DataKey:
        """`WrongKeyError` naming the KEK id when that KEK is no longer configured."""
        kek = self.keks.get(wrapped.kek_id)
        if kek is None:
            raise WrongKeyError(
                f"the key was wrapped under another key-encryption key, {wrapped.kek_id!r}, "
                "which is not configured"
            )
        return unwrap(kek, patient_key, wrapped)


class DataKeys:
    """Unwrapped data keys by key id, the least recently used dropped beyond `size`.

    Unwrapping costs a few microseconds, but a run opens its patient's key at every command;
    the cache holds the keys of the runs in flight. `forget` drops a key at once when its
    patient is erased, so nothing opened later comes from the cache.
    """

    def __init__(self, keyring: Keyring, size: int = 100_000) -> None:
        self.keyring = keyring
        self._size = size
        self._keys: OrderedDict[str, DataKey] = OrderedDict()
        self._owner: dict[str, str] = {}
        """Key id -> the patient key it unwrapped for."""

    def open(self, patient_key: str, wrapped: WrappedKey) -> DataKey:
        """The data key inside `wrapped`; `ShreddingError` when it does not unwrap for
        `patient_key`. A cached key is handed out only for the patient key it unwrapped for."""
        cached = self._keys.get(wrapped.kid)
        if cached is not None and self._owner.get(wrapped.kid) == patient_key:
            self._keys.move_to_end(wrapped.kid)
            return cached
        key = self.keyring.unwrap(patient_key, wrapped)
        self._keys[wrapped.kid] = key
        self._owner[wrapped.kid] = patient_key
        if len(self._keys) > self._size:
            kid, _ = self._keys.popitem(last=False)
            self._owner.pop(kid, None)
        return key

    def forget(self, kids: Iterable[str]) -> None:
        for kid in kids:
            self._keys.pop(kid, None)
            self._owner.pop(kid, None)

    def clear(self) -> None:
        """Forget every key: what this process may no longer open (partitions revoked) goes
        at once, and keys still needed are unwrapped again when next used."""
        self._keys.clear()
        self._owner.clear()

    def forget_patient(self, patient_key: str) -> None:
        self.forget([kid for kid, owner in self._owner.items() if owner == patient_key])

    def __len__(self) -> int:
        return len(self._keys)
