"""Patient keys: the Kafka key of every command and event, never the raw patient id."""

from __future__ import annotations

import hashlib
import hmac
from typing import Annotated

from pydantic import StringConstraints

PatientKey = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
"""A patient key as it appears in a record's value: 64 lowercase hex digits."""


def patient_key(secret: str, patient_id: str) -> str:
    """HMAC-SHA256 of the patient id under the deployment secret, hex: stable, not reversible."""
    return hmac.new(secret.encode(), patient_id.encode(), hashlib.sha256).hexdigest()
