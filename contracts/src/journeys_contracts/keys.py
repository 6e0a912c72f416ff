"""Patient keys: the Kafka key of every command and event, never the raw patient id."""

from __future__ import annotations

import hashlib
import hmac


def patient_key(secret: str, patient_id: str) -> str:
    """HMAC-SHA256 of the patient id under the deployment secret, hex: stable, not reversible."""
    return hmac.new(secret.encode(), patient_id.encode(), hashlib.sha256).hexdigest()
