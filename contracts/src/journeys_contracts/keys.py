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


RecipientKey = PatientKey
"""A recipient key: 64 lowercase hex digits, like a patient key."""

_PHONE_PUNCTUATION = str.maketrans("", "", " -.()/\t")


def normalized_phone(phone: str) -> str:
    """A phone number as providers write it in E.164 (`+15550100001`): without the spaces,
    dashes, dots and brackets people type. Digits are not added: a number stored without its
    country code stays without it, and matches only itself."""
    return phone.strip().translate(_PHONE_PUNCTUATION)


def recipient_key(secret: str, channel: str, address: str) -> str:
    """HMAC-SHA256 of a channel and an address (an SMS number, normalized) under the deployment
    secret, hex: what a message that went to the address and a reply that came from it share,
    without the address. Domain-separated from patient keys by the channel prefix."""
    address = normalized_phone(address) if channel == "sms" else address.strip().lower()
    message = f"recipient:{channel}:{address}"
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()
