"""The console channel: messages printed on the delivery service's standard output, for local
runs. Patient id and text only when explicitly allowed."""

from __future__ import annotations

import sys
from collections import OrderedDict
from uuid import UUID

from journeys_contracts.deliveries import DeliveryRequested
from journeys_delivery.channels import Outcome, Sent


class ConsoleChannel:
    name = "console"

    def __init__(self, reveal_patient_data: bool, remember: int = 100_000) -> None:
        self.reveal = reveal_patient_data
        self._seen: OrderedDict[UUID, None] = OrderedDict()
        self._remember = remember

    async def send(self, request: DeliveryRequested) -> Outcome:
        # A repeated request (the service restarted before its report) prints nothing more:
        # the console de-duplicates on the message id, as a provider would.
        if request.message_id in self._seen:
            return Sent()
        self._seen[request.message_id] = None
        if len(self._seen) > self._remember:
            self._seen.popitem(last=False)
        if self.reveal:
            line = f"Sending message to patient {request.patient_id}: {request.message}"
        else:
            line = f"Sending message {request.message_id} (patient data hidden)"
        print(line, file=sys.stdout, flush=True)
        return Sent()

    async def close(self) -> None:
        pass
