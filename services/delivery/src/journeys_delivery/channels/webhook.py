"""The webhook channel: each message POSTed to the deployment's own messaging gateway, signed
with the Standard Webhooks scheme (`standardwebhooks`), the message id as `webhook-id`.

The gateway de-duplicates on `webhook-id`, as the scheme asks of receivers, so a message sent
again after a crash (same id, new timestamp and signature) reaches the patient once.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

from standardwebhooks import Webhook

from journeys_contracts.deliveries import DeliveryRequested
from journeys_delivery.channels import Failed, Outcome, http_outcome
from journeys_delivery.channels.http import HttpPool
from journeys_delivery.retries import parse_retry_after

log = logging.getLogger(__name__)

EVENT_TYPE = "message.send"


def body(request: DeliveryRequested) -> bytes:
    """What the gateway receives: who, what, and the ids to reconcile by."""
    return json.dumps(
        {
            "type": EVENT_TYPE,
            "timestamp": request.requested_at.isoformat().replace("+00:00", "Z"),
            "data": {
                "messageId": str(request.message_id),
                "runId": str(request.run_id),
                "journeyId": str(request.journey_id),
                "nodeId": request.node_id,
                "patientId": request.patient_id,
                "message": request.message,
                "attempt": request.attempt,
            },
        },
        separators=(",", ":"),
    ).encode()


def outcome_of(status: int, retry_after: str | None = None) -> Outcome:
    return http_outcome("gateway", status, parse_retry_after(retry_after))


class WebhookChannel:
    name = "webhook"

    def __init__(self, url: str, secret: str, timeout: float, concurrency: int) -> None:
        self.url = url
        self._signer = Webhook(secret)
        self._http = HttpPool(timeout, concurrency)

    async def send(self, request: DeliveryRequested) -> Outcome:
        payload = body(request)
        msg_id = str(request.message_id)
        now = datetime.now(UTC)
        headers = {
            "content-type": "application/json",
            "webhook-id": msg_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": self._signer.sign(msg_id, now, payload),
        }
        answer = await self._http.post(self.url, data=payload, headers=headers)
        if isinstance(answer, str):
            return Failed(reason=f"gateway {answer}", permanent=False)
        status, retry_after = answer
        return outcome_of(status, retry_after)

    async def close(self) -> None:
        await self._http.close()
