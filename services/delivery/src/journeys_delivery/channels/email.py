"""The email channel: SMTP with STARTTLS (aiosmtplib). The `Message-ID` is derived from the
message id, so a message sent again after a crash carries the same id, and a mail store or a
reader that de-duplicates on it shows it once; SMTP itself does not de-duplicate."""

from __future__ import annotations

import asyncio
import ssl
from email.message import EmailMessage

import aiosmtplib

from journeys_contracts.deliveries import DeliveryRequested
from journeys_delivery.channels import Failed, Outcome, Sent


def single_address(value: str | None) -> str | None:
    """The context's `email` when it is exactly one plain address; None otherwise (a list, a
    name with the address, a line break), so one patient's mail never goes to several."""
    if not value or any(c in value for c in '\r\n,;<>"') or value.count("@") != 1:
        return None
    return value.strip() or None


def message_id_header(message_id: str, sender: str) -> str:
    domain = sender.rpartition("@")[2] or "journeys.invalid"
    return f"<{message_id}@{domain}>"


class EmailChannel:
    name = "email"

    def __init__(
        self,
        host: str,
        port: int,
        sender: str,
        *,
        username: str | None,
        password: str | None,
        starttls: bool,
        ca_file: str | None,
        timeout: float,
        concurrency: int,
    ) -> None:
        self.host, self.port, self.sender = host, port, sender
        self.username, self.password = username, password
        self.starttls, self.timeout = starttls, timeout
        self._tls = ssl.create_default_context(cafile=ca_file) if starttls else None
        self._slots = asyncio.Semaphore(concurrency)

    def compose(self, request: DeliveryRequested) -> EmailMessage:
        mail = EmailMessage()
        mail["From"] = self.sender
        mail["To"] = request.email or ""
        mail["Subject"] = request.subject or "A message from your care team"
        mail["Message-ID"] = message_id_header(str(request.message_id), self.sender)
        mail.set_content(request.message)
        return mail

    async def send(self, request: DeliveryRequested) -> Outcome:
        address = single_address(request.email)
        if address is None:
            return Failed(reason="no single email address in the patient context", permanent=True)
        try:
            mail = self.compose(request)
        except ValueError:  # a line break in the subject or the address
            return Failed(reason="email subject or address not allowed in a header", permanent=True)
        async with self._slots:
            try:
                await aiosmtplib.send(
                    mail, recipients=[address], hostname=self.host, port=self.port,
                    username=self.username, password=self.password, start_tls=self.starttls,
                    tls_context=self._tls, timeout=self.timeout,
                )  # fmt: skip
            except aiosmtplib.SMTPRecipientsRefused as exc:
                # 450/451 at RCPT (greylisting, a busy mailbox) is worth another try.
                codes = [refusal.code for refusal in exc.recipients]
                permanent = bool(codes) and all(code >= 500 for code in codes)
                return Failed(reason="smtp server refused the recipient", permanent=permanent)
            except aiosmtplib.SMTPResponseException as exc:
                # 4xx: try again later; 5xx: the same mail would be refused again.
                permanent = exc.code >= 500
                return Failed(reason=f"smtp server answered {exc.code}", permanent=permanent)
            except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
                return Failed(reason=f"smtp unreachable: {type(exc).__name__}", permanent=False)
        return Sent()

    async def close(self) -> None:
        pass
