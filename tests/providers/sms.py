"""An SMS gateway with Twilio's REST API shape on loopback: it checks the account's Basic auth
and the form fields as Twilio does, de-duplicates on `I-Twilio-Idempotency-Token`, answers 201
with a message resource, and can be told to fail, throttle or hang. It also plays the patient
texting back: `reply` calls our inbound webhook as Twilio does, a form signed in
`X-Twilio-Signature` with the account's auth token."""

from __future__ import annotations

import asyncio
import base64
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx
from aiohttp import web
from twilio.request_validator import SIGNATURE_HEADER, RequestValidator

from journeys_stack.ports import free_port

ACCOUNT_SID = "AC" + "0" * 32
AUTH_TOKEN = "loopback-sms-token"
SENDER = "+15005550006"


@dataclass
class SmsGateway:
    port: int = field(default_factory=free_port)
    status: int = 201
    failures_left: int = 0
    failure_status: int = 503
    retry_after: str | None = None
    hang_seconds: float = 0.0
    received: dict[str, dict[str, str]] = field(default_factory=dict)
    """Accepted messages by idempotency token, each once."""
    attempts: Counter[str] = field(default_factory=Counter)
    refused: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> SmsGateway:
        self._thread = threading.Thread(target=self._serve, name="sms-gateway", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the SMS gateway did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)

    def _serve(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        app = web.Application()
        app.router.add_post("/2010-04-01/Accounts/{sid}/Messages.json", self._receive)
        runner = web.AppRunner(app, access_log=None)
        loop.run_until_complete(runner.setup())
        loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", self.port).start())
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(runner.cleanup())
            loop.close()

    def _refuse(self, why: str, status: int, code: int) -> web.Response:
        with self._lock:
            self.refused.append(why)
        return web.json_response({"code": code, "message": why, "status": status}, status=status)

    async def _receive(self, request: web.Request) -> web.Response:
        expected = "Basic " + base64.b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()
        if request.headers.get("Authorization") != expected:
            return self._refuse("authenticate", 401, 20003)
        if request.match_info["sid"] != ACCOUNT_SID:
            return self._refuse("wrong account", 404, 20404)
        form = await request.post()
        fields = {k: str(form.get(k, "")) for k in ("To", "From", "Body")}
        if not fields["To"].startswith("+") or not fields["Body"]:
            return self._refuse("invalid 'To' or empty 'Body'", 400, 21211)
        token = request.headers.get("I-Twilio-Idempotency-Token") or str(uuid.uuid4())
        with self._lock:
            self.attempts[token] += 1
            failing = self.failures_left > 0
            self.failures_left -= failing
        if self.hang_seconds:
            await asyncio.sleep(self.hang_seconds)
        if failing or self.status >= 300:
            status = self.failure_status if failing else self.status
            headers = {"Retry-After": self.retry_after} if self.retry_after else {}
            return web.json_response({"code": 20500, "status": status}, status=status,
                                     headers=headers)  # fmt: skip
        with self._lock:
            first = token not in self.received
            self.received.setdefault(token, fields)
        sid = "SM" + uuid.uuid5(uuid.NAMESPACE_OID, token).hex
        body: dict[str, Any] = {"sid": sid, "status": "queued", **fields}
        return web.json_response(body, status=201 if first else 200)

    def wait_for(self, count: int, timeout: float = 30.0) -> dict[str, dict[str, str]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.received) >= count:
                    return dict(self.received)
            time.sleep(0.05)
        raise AssertionError(f"expected {count} SMS, the gateway has {len(self.received)}")

    def reply(
        self, api_url: str, sender: str, text: str, *, sid: str | None = None,
        token: str = AUTH_TOKEN,
    ) -> httpx.Response:  # fmt: skip
        """Text `text` from `sender` to our number: POST the inbound webhook Twilio would, to
        `{api_url}/channels/sms/inbound`, signed with `token`."""
        url = f"{api_url}/channels/sms/inbound"
        form = {"MessageSid": sid or "SM" + uuid.uuid4().hex, "AccountSid": ACCOUNT_SID,
                "From": sender, "To": SENDER, "Body": text, "NumMedia": "0"}  # fmt: skip
        signature = RequestValidator(token).compute_signature(url, form)
        return httpx.post(url, data=form, headers={SIGNATURE_HEADER: signature}, timeout=20)
