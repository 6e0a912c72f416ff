"""The SMS channel: an SMS gateway with Twilio's REST API shape (`POST
/2010-04-01/Accounts/{AccountSid}/Messages.json`, form fields `To`, `From`, `Body`, HTTP Basic
auth with the account SID and auth token), the message id as its idempotency key (in
`I-Twilio-Idempotency-Token` and `Idempotency-Key`): a gateway that de-duplicates on it sends a
message asked for again after a crash once. Whether a provider does is the provider's to say;
the loopback gateway in the tests does."""

from __future__ import annotations

from aiohttp import encode_basic_auth

from journeys_contracts.deliveries import DeliveryRequested
from journeys_delivery.channels import Failed, Outcome, http_outcome
from journeys_delivery.channels.http import HttpPool
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
        self._authorization = encode_basic_auth(account_sid, auth_token)
        self._http = HttpPool(timeout, concurrency)

    async def send(self, request: DeliveryRequested) -> Outcome:
        if not request.phone:
            return Failed(reason="no phone number in the patient context", permanent=True)
        form = {"To": request.phone, "From": self.sender, "Body": request.message}
        headers = {IDEMPOTENCY_HEADER: str(request.message_id),
                   "Idempotency-Key": str(request.message_id),
                   "Authorization": self._authorization}  # fmt: skip
        answer = await self._http.post(self.url, data=form, headers=headers)
        if isinstance(answer, str):
            return Failed(reason=f"sms gateway {answer}", permanent=False)
        status, retry_after = answer
        return http_outcome("sms gateway", status, parse_retry_after(retry_after))

    async def close(self) -> None:
        await self._http.close()
