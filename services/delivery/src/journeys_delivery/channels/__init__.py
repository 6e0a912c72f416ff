"""The channels a message can go by, each a small adapter behind `Channel`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from journeys_contracts.deliveries import DeliveryRequested


@dataclass(frozen=True)
class Sent:
    """The provider accepted the message."""


@dataclass(frozen=True)
class Failed:
    """The provider did not take the message. `reason` is ours (a status code, an error type),
    never the provider's text, which may quote the message or the patient. `permanent`: the
    same request would fail again (a 4xx other than 408 and 429)."""

    reason: str
    permanent: bool
    retry_after: float | None = None
    """The provider's `Retry-After`, in seconds, when it gave one."""


Outcome = Sent | Failed


class Channel(Protocol):
    name: str

    async def send(self, request: DeliveryRequested) -> Outcome:
        """Hand one message to the provider, with `request.message_id` as the idempotency key
        the provider de-duplicates on. Answers; never raises for the provider's failures."""
        ...

    async def close(self) -> None: ...
