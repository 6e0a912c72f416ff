"""The webhook channel: each message POSTed to the deployment's own messaging gateway, signed
with the Standard Webhooks scheme (`standardwebhooks`), the message id as `webhook-id`.

The gateway de-duplicates on `webhook-id`, as the scheme asks of receivers, so a message sent
again after a crash (same id, new timestamp and signature) reaches the patient once.
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime

import httpx
from standardwebhooks import Webhook

from journeys_contracts.deliveries import DeliveryRequested
from journeys_delivery.channels import Failed, Outcome, http_outcome
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
        self._client = httpx.AsyncClient(
            timeout=timeout,
            limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
        )
        self._slots = asyncio.Semaphore(concurrency)

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
        async with self._slots:
            try:
                response = await self._client.post(self.url, content=payload, headers=headers)
            except httpx.TimeoutException:
                return Failed(reason="gateway timed out", permanent=False)
            except httpx.HTTPError as exc:  # connection refused, reset, protocol error
                return Failed(reason=f"gateway unreachable: {type(exc).__name__}", permanent=False)
        return outcome_of(response.status_code, response.headers.get("retry-after"))

    async def close(self) -> None:
        await self._client.aclose()
