"""Crypto-shredding: patient data sealed under a per-patient data key, erased by deleting the key.

A *data key* (256 bits, random) belongs to one patient, named by their patient key (the
HMAC of the patient id that keys every Kafka record). Patient data is stored only *sealed*:
a JSON value encrypted with AES-256-GCM under that key, inside a JSON envelope

    {"enc": "v1", "kid": "<data key id>", "ct": "<base64 of nonce || ciphertext || tag>"}

that can sit where the clear value sat (a field of an event, a column, a changelog entry).
The associated data binds each ciphertext to its key id, its patient key and the field it
was sealed for, so a sealed value moved to another patient or another field fails to open
instead of opening somewhere it does not belong. Once every copy of the data key is gone,
every sealed copy of the patient's data, wherever it was copied, is noise.

Data keys are stored only *wrapped*: encrypted with AES-256-GCM under a key-encryption key
(KEK) from the deployment's secrets, the associated data binding the wrapped key to its
patient key, its own id and the KEK's id.

Nonces are 96 random bits per encryption. One data key seals one patient's values, at most
some thousands over its life, far below the 2**32 encryptions per key that random GCM
nonces allow. Sealing is not deterministic: the same value sealed twice gives different
envelopes. Ciphertext length follows the value's length.

This module is pure (no I/O, no settings): where keys are kept, cached and deleted is the
callers' concern. Its errors never quote a value, a key or a patient key.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import secrets
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import Any

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

ENVELOPE_VERSION = "v1"
KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_SEALED_PURPOSE = "journeys-sealed-value-v1"  # not shaped like a topic name
_WRAPPED_PURPOSE = "journeys-data-key-v1"

Envelope = dict[str, str]


class ShreddingError(ValueError):
    """A sealed value or wrapped key could not be opened; the message names no data."""


class MalformedError(ShreddingError):
    """Not an envelope (or wrapped key) of a version this code reads."""


class WrongKeyError(ShreddingError):
    """The envelope was sealed under another data key (an erased one, or another patient's
    generation): fetch the key its `kid` names, or treat the value as erased."""


class TamperedError(ShreddingError):
    """Authentication failed: the ciphertext, its key id, its patient key or its field is not
    the one it was sealed with. Never retried: the same input always fails."""


def _check_id(kind: str, value: str) -> str:
    if not isinstance(value, str) or _ID.fullmatch(value) is None:
        raise MalformedError(f"{kind} must be 1 to 64 letters, digits, '_', '.' or '-'")
    return value


@dataclass(frozen=True, repr=False)
class DataKey:
    """One patient's data key: `kid` names it in every envelope sealed under it."""

    kid: str
    secret: bytes

    def __post_init__(self) -> None:
        _check_id("kid", self.kid)
        if len(self.secret) != KEY_BYTES:
            raise ValueError(f"a data key is {KEY_BYTES} bytes")

    def __repr__(self) -> str:  # the secret never reaches a log line or a traceback
        return f"DataKey(kid={self.kid!r})"

    @classmethod
    def generate(cls) -> DataKey:
        """A fresh random key with a fresh random id (never reused, even for the same patient)."""
        return cls(kid=secrets.token_hex(16), secret=AESGCM.generate_key(bit_length=256))

    @cached_property
    def _aead(self) -> AESGCM:
        return AESGCM(self.secret)


@dataclass(frozen=True, repr=False)
class KeyEncryptionKey:
    """The deployment's key that wraps data keys; `kek_id` lets it be rotated."""

    kek_id: str
    secret: bytes

    def __post_init__(self) -> None:
        _check_id("kek id", self.kek_id)
        if len(self.secret) != KEY_BYTES:
            raise ValueError(f"a key-encryption key is {KEY_BYTES} bytes")

    def __repr__(self) -> str:
        return f"KeyEncryptionKey(kek_id={self.kek_id!r})"

    @classmethod
    def from_base64(cls, kek_id: str, text: str) -> KeyEncryptionKey:
        """From a setting's value: 32 bytes in standard base64."""
        try:
            secret = base64.b64decode(text.strip(), validate=True)
        except binascii.Error:
            raise ValueError("a key-encryption key must be base64") from None
        return cls(kek_id=kek_id, secret=secret)

    @cached_property
    def _aead(self) -> AESGCM:
        return AESGCM(self.secret)


@dataclass(frozen=True)
class WrappedKey:
    """A data key encrypted under a KEK: safe to store in a table or a compacted topic."""

    kid: str
    kek_id: str
    wrapped: bytes

    def to_json(self) -> dict[str, str]:
        return {"kid": self.kid, "kek": self.kek_id,
                "wrapped": base64.b64encode(self.wrapped).decode()}  # fmt: skip

    @classmethod
    def from_json(cls, data: Any) -> WrappedKey:
        if not isinstance(data, dict) or set(data) != {"kid", "kek", "wrapped"}:
            raise MalformedError("a wrapped key is an object of kid, kek and wrapped")
        return cls(
            kid=_check_id("kid", data["kid"]),
            kek_id=_check_id("kek id", data["kek"]),
            wrapped=_b64decode(data["wrapped"]),
        )


def wrap(kek: KeyEncryptionKey, patient_key: str, key: DataKey) -> WrappedKey:
    """`key` encrypted under `kek`, bound to `patient_key`."""
    nonce = os.urandom(NONCE_BYTES)
    ad = _wrapped_ad(kek.kek_id, key.kid, patient_key)
    return WrappedKey(key.kid, kek.kek_id, nonce + kek._aead.encrypt(nonce, key.secret, ad))


def unwrap(kek: KeyEncryptionKey, patient_key: str, wrapped: WrappedKey) -> DataKey:
    """The data key inside `wrapped`; `TamperedError` unless it was wrapped by `wrap` under
    this KEK for this patient key, `WrongKeyError` if another KEK wrapped it."""
    if wrapped.kek_id != kek.kek_id:
        raise WrongKeyError("the key was wrapped under another key-encryption key")
    nonce, body = wrapped.wrapped[:NONCE_BYTES], wrapped.wrapped[NONCE_BYTES:]
    if len(body) != KEY_BYTES + TAG_BYTES:
        raise MalformedError("a wrapped key has the wrong length")
    try:
        secret = kek._aead.decrypt(nonce, body, _wrapped_ad(kek.kek_id, wrapped.kid, patient_key))
    except InvalidTag:
        raise TamperedError("the wrapped key does not open for this patient key") from None
    return DataKey(kid=wrapped.kid, secret=secret)


def seal(key: DataKey, patient_key: str, field_name: str, value: Any) -> Envelope:
    """`value` (anything JSON can hold, finite numbers only) sealed for this patient's field."""
    nonce = os.urandom(NONCE_BYTES)
    ct = key._aead.encrypt(nonce, _plain(value), _sealed_ad(key.kid, patient_key, field_name))
    return {"enc": ENVELOPE_VERSION, "kid": key.kid, "ct": base64.b64encode(nonce + ct).decode()}


def open_sealed(key: DataKey, patient_key: str, field_name: str, envelope: Any) -> Any:
    """The value `seal` sealed. Raises `MalformedError` for anything but an envelope,
    `WrongKeyError` if another data key sealed it, `TamperedError` if it was sealed for
    another patient key or field, or changed since."""
    kid = kid_of(envelope)
    if kid != key.kid:
        raise WrongKeyError("the value was sealed under another data key")
    blob = _b64decode(envelope["ct"])
    if len(blob) < NONCE_BYTES + TAG_BYTES:
        raise MalformedError("a sealed value is shorter than its nonce and tag")
    nonce, ct = blob[:NONCE_BYTES], blob[NONCE_BYTES:]
    try:
        plain = key._aead.decrypt(nonce, ct, _sealed_ad(kid, patient_key, field_name))
    except InvalidTag:
        raise TamperedError(
            "the sealed value does not open for this patient key and field"
        ) from None
    # Authenticated: `seal` wrote it. orjson reads an integer just past 64 bits as a float
    # instead of refusing it, so text with a number that long (rare) is read by `json`.
    if not _LONG_DIGITS.search(plain):
        try:
            return orjson.loads(plain)
        except orjson.JSONDecodeError:  # a lone surrogate
            pass
    return json.loads(plain.decode(errors="surrogatepass"))


_LONG_DIGITS = re.compile(rb"[0-9]{19}")
"""19 digits in a row: where an integer past 64 bits may be (2**63 has 19)."""


def is_sealed(value: Any) -> bool:
    """Whether `value` has the shape of an envelope (its contents are not checked)."""
    return isinstance(value, dict) and value.get("enc") == ENVELOPE_VERSION and "ct" in value


def kid_of(envelope: Any) -> str:
    """The id of the data key an envelope was sealed under: which key to fetch to open it."""
    if not isinstance(envelope, dict) or set(envelope) != {"enc", "kid", "ct"}:
        raise MalformedError("a sealed value is an object of enc, kid and ct")
    if envelope["enc"] != ENVELOPE_VERSION:
        raise MalformedError(f"only {ENVELOPE_VERSION} envelopes are read here")
    if not isinstance(envelope["ct"], str):
        raise MalformedError("ct must be base64 text")
    return _check_id("kid", envelope["kid"])


# Dates and dataclasses are not JSON: orjson would write them, `json` refuses them, as before.
_ONLY_JSON = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


def _plain(value: Any) -> bytes:
    """`value` as compact JSON (UTF-8) for sealing. orjson writes nearly every value, ten
    times faster than `json`; what it refuses (a lone surrogate, an integer past 64 bits, a
    key that is not a string) and anything where it wrote `null` (where it may have written
    a NaN or an infinity, which `json` refuses) go through `json`, so the bytes always open
    with `json.loads` as the value."""
    try:
        plain = orjson.dumps(value, option=_ONLY_JSON)
    except orjson.JSONEncodeError:
        plain = None
    if plain is not None and b"null" not in plain:
        return plain
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    # A JSON string may hold a lone surrogate ("\ud800"); it must round-trip, not raise.
    return text.encode(errors="surrogatepass")


@lru_cache(maxsize=4096)  # one patient's fields are sealed again and again in a run
def _sealed_ad(kid: str, patient_key: str, field_name: str) -> bytes:
    # A JSON array, so no choice of parts can make two different triples encode alike.
    return _json_array([_SEALED_PURPOSE, kid, patient_key, field_name])


def _wrapped_ad(kek_id: str, kid: str, patient_key: str) -> bytes:
    return _json_array([_WRAPPED_PURPOSE, kek_id, kid, patient_key])


def _json_array(parts: list[str]) -> bytes:
    """`json.dumps(parts).encode()`, joined directly when no part needs escaping (printable
    ASCII but `"` and `\\`, as ids and patient keys always are): an import seals for
    thousands of patients a second, each a miss of the cache above."""
    text = "".join(parts)
    if parts and text.isascii() and text.isprintable() and '"' not in text and "\\" not in text:
        return ('["' + '", "'.join(parts) + '"]').encode()
    return json.dumps(parts).encode()


def _b64decode(text: Any) -> bytes:
    if not isinstance(text, str):
        raise MalformedError("expected base64 text")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise MalformedError("expected base64 text") from None
