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


RETRYABLE_STATUSES = frozenset({408, 429})


def http_outcome(who: str, status: int, retry_after: float | None = None) -> Outcome:
    """What a provider's HTTP answer means: 2xx sent; 408, 429 and 5xx worth another try (at
    least `retry_after` seconds later, when the provider said); any other 4xx final, since the
    same request would be refused again."""
    if 200 <= status < 300:
        return Sent()
    # A redirect (not followed) or a 4xx other than 408 and 429 would be answered again.
    permanent = 300 <= status < 500 and status not in RETRYABLE_STATUSES
    return Failed(
        reason=f"{who} answered {status}", permanent=permanent,
        retry_after=None if permanent else retry_after,
    )  # fmt: skip
