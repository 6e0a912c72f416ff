"""Inbound SMS: what a text means (STOP, START, HELP or a reply), the gateway's signature,
the answer it gets (TwiML), and the claim of a gateway message id, so a repeat changes nothing.

Keywords follow the carriers' and Twilio's opt-out rules: the whole text, case-insensitive,
spaces and a trailing full stop or exclamation mark ignored, is the keyword; "stop please" is a
reply, not a STOP.
"""

from __future__ import annotations

from html import escape
from typing import Any, Literal
from urllib.parse import parse_qsl

from psycopg_pool import AsyncConnectionPool
from starlette.datastructures import ImmutableMultiDict
from twilio.request_validator import (
    SIGNATURE_HEADER,
    SIGNATURE_SETTINGS_HEADER,
    RequestValidator,
    get_signature_algorithm,
)

Keyword = Literal["stop", "start", "help"]

KEYWORDS: dict[str, Keyword] = {
    **dict.fromkeys(("STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"), "stop"),
    **dict.fromkeys(("START", "UNSTOP"), "start"),
    **dict.fromkeys(("HELP", "INFO"), "help"),
}
"""The opt-out keywords carriers require, the opt-in ones (not Twilio's `YES` too: a patient
answering a question "yes" is replying, not opting in) and the help ones."""

CONSENT_OF: dict[Keyword, bool] = {"stop": False, "start": True}
"""What a keyword does to the patient's consent to SMS; HELP changes nothing."""

TWIML = "application/xml"
_EMPTY = '<?xml version="1.0" encoding="UTF-8"?><Response/>'

_CLAIM = """
INSERT INTO api_sms_inbound (message_sid) VALUES (%s) ON CONFLICT (message_sid) DO NOTHING
"""
_PUBLISHED_AT = "SELECT published_at FROM api_sms_inbound WHERE message_sid = %s"
_MARK = "UPDATE api_sms_inbound SET published_at = now() WHERE message_sid = %s"


def keyword_of(text: str) -> Keyword | None:
    """The keyword the whole text is, if it is one."""
    return KEYWORDS.get(text.strip().rstrip(".!").strip().upper())


def answer(keyword: Keyword | None, help_text: str) -> str:
    """The TwiML the gateway sends back: the help text to a HELP, nothing otherwise (the
    gateway confirms a STOP or START itself, as the carriers require)."""
    if keyword != "help":
        return _EMPTY
    text = escape(help_text, quote=False)  # element content: &, < and > escaped
    return f'<?xml version="1.0" encoding="UTF-8"?><Response><Message>{text}</Message></Response>'


def form_of(body: bytes) -> ImmutableMultiDict[str, str]:
    """The gateway's form (`application/x-www-form-urlencoded`), every value of every field;
    raises UnicodeDecodeError for a body that is not UTF-8."""
    return ImmutableMultiDict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))


def verified(token: str, url: str, form: ImmutableMultiDict[str, str], headers: Any) -> bool:
    """Whether the gateway signed this request (`X-Twilio-Signature`: HMAC of the URL and the
    sorted form fields under the account's auth token, SHA-1 or, when the settings header
    says, SHA-256), checked by Twilio's own validator."""
    signature = headers.get(SIGNATURE_HEADER, "")
    if not signature:
        return False
    algorithm = get_signature_algorithm(headers.get(SIGNATURE_SETTINGS_HEADER))
    return bool(RequestValidator(token).validate(url, form, signature, algorithm))


async def claim(pool: AsyncConnectionPool[Any], message_sid: str) -> bool:
    """Claim the gateway's message; False when its commands are in Kafka already (a claim
    whose publishing failed is taken again)."""
    async with pool.connection() as conn:
        await conn.execute(_CLAIM, (message_sid,))
        cursor = await conn.execute(_PUBLISHED_AT, (message_sid,))
        row = await cursor.fetchone()
    return row is None or row[0] is None


async def mark_published(pool: AsyncConnectionPool[Any], message_sid: str) -> None:
    async with pool.connection() as conn:
        await conn.execute(_MARK, (message_sid,))
