"""The SMS channel: an SMS gateway with Twilio's REST API shape (`POST
/2010-04-01/Accounts/{AccountSid}/Messages.json`, form fields `To`, `From`, `Body`, HTTP Basic
auth with the account SID and auth token), the message id as its idempotency token
(`I-Twilio-Idempotency-Token`), so a message sent again after a crash is sent once."""

from __future__ import annotations

import asyncio

import httpx

from journeys_contracts.deliveries import DeliveryRequested
from journeys_delivery.channels import Failed, Outcome, http_outcome
from journeys_delivery.retries import parse_retry_after

IDEMPOTENCY_HEADER = "I-Twilio-Idempotency-Token"


class SmsChannel:
    name = "sms"

    def __init__(
        self,
        base_url: str,
        account_sid: str,
        auth_token: str,
        sender: str,
        timeout: float,
        concurrency: int,
    ) -> None:
        self.url = f"{base_url.rstrip('/')}/2010-04-01/Accounts/{account_sid}/Messages.json"
        self.sender = sender
        self._client = httpx.AsyncClient(
            timeout=timeout, auth=(account_sid, auth_token),
            limits=httpx.Limits(max_connections=concurrency,
                                max_keepalive_connections=concurrency),
        )  # fmt: skip
        self._slots = asyncio.Semaphore(concurrency)

    async def send(self, request: DeliveryRequested) -> Outcome:
        if not request.phone:
            return Failed(reason="no phone number in the patient context", permanent=True)
        form = {"To": request.phone, "From": self.sender, "Body": request.message}
        headers = {IDEMPOTENCY_HEADER: str(request.message_id)}
        async with self._slots:
            try:
                response = await self._client.post(self.url, data=form, headers=headers)
            except httpx.TimeoutException:
                return Failed(reason="sms gateway timed out", permanent=False)
            except httpx.HTTPError as exc:
                reason = f"sms gateway unreachable: {type(exc).__name__}"
                return Failed(reason=reason, permanent=False)
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        return http_outcome("sms gateway", response.status_code, retry_after)

    async def close(self) -> None:
        await self._client.aclose()
