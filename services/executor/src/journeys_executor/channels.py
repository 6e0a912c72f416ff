"""Message channels: where a MESSAGE node's text goes, outside the pure core."""

from __future__ import annotations

import sys
from collections import OrderedDict
from dataclasses import dataclass
from typing import Protocol
from uuid import UUID


@dataclass(frozen=True)
class DeliveryResult:
    delivered: bool
    reason: str | None = None


class Channel(Protocol):
    name: str

    async def deliver(self, message_id: UUID, patient_id: str, text: str) -> DeliveryResult:
        """Hand one message over; `message_id` is the idempotency key the channel dedups on."""
        ...


class ConsoleChannel:
    """Prints messages for local runs; patient id and text only when explicitly allowed."""

    name = "console"

    def __init__(self, reveal_patient_data: bool, remember: int = 100_000) -> None:
        self.reveal = reveal_patient_data
        self._seen: OrderedDict[UUID, None] = OrderedDict()
        self._remember = remember

    async def deliver(self, message_id: UUID, patient_id: str, text: str) -> DeliveryResult:
        if message_id in self._seen:
            return DeliveryResult(delivered=True)
        self._seen[message_id] = None
        if len(self._seen) > self._remember:
            self._seen.popitem(last=False)
        if self.reveal:
            line = f"Sending message to patient {patient_id}: {text}"
        else:
            line = f"Sending message {message_id} (patient data hidden)"
        print(line, file=sys.stdout, flush=True)
        return DeliveryResult(delivered=True)
