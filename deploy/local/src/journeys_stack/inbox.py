"""The development inbox `make run` sends messages to: an SMTP server, a webhook receiver and
an SMS endpoint with Twilio's REST API shape, all on loopback, writing every message they take
to one file, one JSON line each (`.data/logs/inbox.log`).

It is what the delivery service's real channels talk to on a developer's machine, so the
walkthrough's messages go through SMTP, a signed webhook and an SMS gateway's API, not only the
console. It de-duplicates as the real ones should (webhook-id, the SMS idempotency token) and
verifies the webhook signatures. Development only: it writes patient data to its file.
"""

from __future__ import annotations

import asyncio
import base64
import json
import threading
from datetime import UTC, datetime
from email import message_from_bytes
from email.policy import default
from pathlib import Path
from typing import Any

from aiohttp import web
from aiosmtpd.controller import Controller
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

DEV_WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"journeys-development-inbox-secret").decode()
DEV_SMS_ACCOUNT = "AC" + "d" * 32
DEV_SMS_TOKEN = "development-inbox-token"  # noqa: S105 - public, loopback development only
DEV_SMS_FROM = "+15550100000"
DEV_SENDER = "care@journeys.localhost"


class DevInbox:
    def __init__(self, log_path: Path, smtp_port: int = 1025, http_port: int = 8025) -> None:
        self.log_path, self.smtp_port, self.http_port = log_path, smtp_port, http_port
        self._lock = threading.Lock()
        self._seen: set[str] = set()
        self._smtp = Controller(self, hostname="127.0.0.1", port=smtp_port)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._verifier = Webhook(DEV_WEBHOOK_SECRET)

    def settings(self) -> dict[str, str]:
        """The delivery service's settings that send every channel here, and the API's that
        take texts signed as from this SMS account."""
        http = f"http://127.0.0.1:{self.http_port}"
        return {
            "DELIVERY_WEBHOOK_URL": f"{http}/webhook",
            "DELIVERY_WEBHOOK_SECRET": DEV_WEBHOOK_SECRET,
            "DELIVERY_SMS_URL": http, "DELIVERY_SMS_ACCOUNT_SID": DEV_SMS_ACCOUNT,
            "DELIVERY_SMS_AUTH_TOKEN": DEV_SMS_TOKEN, "DELIVERY_SMS_FROM": DEV_SMS_FROM,
            "DELIVERY_SMTP_HOST": "127.0.0.1", "DELIVERY_SMTP_PORT": str(self.smtp_port),
            "DELIVERY_SMTP_FROM": DEV_SENDER, "DELIVERY_SMTP_STARTTLS": "false",
            # The API checks inbound texts with the same account's token, as with a provider.
            "API_SMS_AUTH_TOKEN": DEV_SMS_TOKEN,
        }  # fmt: skip

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._smtp.start()
        self._thread = threading.Thread(target=self._serve, name="dev-inbox", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the development inbox did not start")

    def stop(self) -> None:
        self._smtp.stop()
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)

    def _write(self, channel: str, key: str, message: dict[str, Any]) -> bool:
        """Append one message to the file; a repeat of a key already written is left out."""
        with self._lock:
            if key in self._seen:
                return False
            self._seen.add(key)
            line = {"at": datetime.now(UTC).isoformat(), "channel": channel, **message}
            with self.log_path.open("a") as out:
                out.write(json.dumps(line, ensure_ascii=False) + "\n")
        return True

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        mail = message_from_bytes(envelope.content, policy=default)
        body = mail.get_body(("plain",))
        self._write("email", str(mail["Message-ID"]), {
            "to": str(mail["To"]), "subject": str(mail["Subject"]),
            "messageId": str(mail["Message-ID"]),
            "text": body.get_content().strip() if body is not None else "",
        })  # fmt: skip
        return "250 OK"

    def _serve(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        app = web.Application()
        app.router.add_post("/webhook", self._webhook)
        app.router.add_post("/2010-04-01/Accounts/{sid}/Messages.json", self._sms)
        runner = web.AppRunner(app, access_log=None)
        loop.run_until_complete(runner.setup())
        loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", self.http_port).start())
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(runner.cleanup())
            loop.close()

    async def _webhook(self, request: web.Request) -> web.Response:
        payload = await request.read()
        try:
            self._verifier.verify(payload, dict(request.headers))
        except WebhookVerificationError:
            return web.Response(status=401)
        data = json.loads(payload)["data"]
        self._write("webhook", request.headers["webhook-id"], {
            "patientId": data["patientId"], "messageId": data["messageId"], "text": data["message"],
        })  # fmt: skip
        return web.Response(status=204)

    async def _sms(self, request: web.Request) -> web.Response:
        credentials = base64.b64encode(f"{DEV_SMS_ACCOUNT}:{DEV_SMS_TOKEN}".encode()).decode()
        if request.headers.get("Authorization") != f"Basic {credentials}":
            return web.json_response({"code": 20003}, status=401)
        form = await request.post()
        token = request.headers.get("I-Twilio-Idempotency-Token", "")
        self._write("sms", token, {"to": str(form.get("To")), "messageId": token,
                                   "text": str(form.get("Body"))})  # fmt: skip
        return web.json_response({"sid": "SM" + token.replace("-", ""), "status": "queued"},
                                 status=201)  # fmt: skip
