"""Sealed patient data on the wire: the envelope, the wrapped data key, and which fields hold it.

A record of a `.v2` type carries every field of its `.v1` twin, except that the fields named
in `SEALED_FIELDS` hold a `SealedValue` instead of the clear value, and it adds `patientKey`
(whose data key sealed them). A sealed value is the clear JSON value encrypted with
AES-256-GCM under the patient's data key; the associated data binds it to the key id, the
patient key and the field's wire name, so it opens only where it was sealed. Erasing a
patient deletes their data key, and every sealed copy, wherever it went, becomes noise.

Only the API and the executor hold the key-encryption keys that open data keys; the
projector, the scheduler and other teams read sealed records by their clear fields.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, StringConstraints

_ID = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
_BASE64 = r"^[A-Za-z0-9+/]*={0,2}$"

SEALED_FIELDS: tuple[str, ...] = (
    "patientId", "patientContext", "message", "reason", "note", "eventData",
    "phone", "email", "subject", "language",
)  # fmt: skip
"""The wire names of the fields that may hold patient data (a free-text reason or note may
quote it): sealed wherever they appear in a `.v2` record, clear in its `.v1` twin."""


class SealedValue(BaseModel):
    """`{"enc": "v1", "kid": …, "ct": base64(nonce ‖ ciphertext ‖ tag)}`: a JSON value sealed
    with AES-256-GCM under the data key `kid` for one patient key and one field."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    enc: Literal["v1"]
    kid: Annotated[str, StringConstraints(pattern=_ID)]
    ct: Annotated[str, StringConstraints(pattern=_BASE64, min_length=40)]


class WrappedDataKey(BaseModel):
    """A patient's data key, encrypted under the key-encryption key `kek`. Travels only in the
    command that starts a run and in the executor's state of that run, both removed when the
    patient is erased or the run is forgotten."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kid: Annotated[str, StringConstraints(pattern=_ID)]
    kek: Annotated[str, StringConstraints(pattern=_ID)]
    wrapped: Annotated[str, StringConstraints(pattern=_BASE64, min_length=40)]


def sealed_type(v1_type: str) -> str:
    """`journeys.run.started.v1` -> `journeys.run.started.v2`."""
    if not v1_type.endswith(".v1"):
        raise ValueError(f"not a v1 type: {v1_type}")
    return v1_type[:-3] + ".v2"


def clear_type(v2_type: str) -> str:
    """`journeys.run.started.v2` -> `journeys.run.started.v1`."""
    if not v2_type.endswith(".v2"):
        raise ValueError(f"not a v2 type: {v2_type}")
    return v2_type[:-3] + ".v1"
