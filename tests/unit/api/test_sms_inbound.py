"""What a text means, the TwiML it gets back, and the gateway's signature, checked with
Twilio's own signing (the provider's side) against our check."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest
from hypothesis import given
from hypothesis import strategies as st
from starlette.datastructures import Headers
from twilio.request_validator import (
    SIGNATURE_HEADER,
    SIGNATURE_SETTINGS_HEADER,
    RequestValidator,
)

from journeys_api.sms_inbound import KEYWORDS, answer, form_of, keyword_of, verified
from journeys_contracts.keys import normalized_phone, patient_key, recipient_key

TOKEN = "loopback-sms-token"
URL = "https://journeys.example.org/channels/sms/inbound"
FORM = {"MessageSid": "SM" + "a" * 32, "From": "+15550100001", "Body": "STOP", "To": "+15005550006"}


@pytest.mark.parametrize(
    ("text", "keyword"),
    [("STOP", "stop"), ("stop", "stop"), (" Stop. ", "stop"), ("unsubscribe!", "stop"),
     ("StopAll", "stop"), ("cancel", "stop"), ("END", "stop"), ("quit", "stop"),
     ("start", "start"), ("UNSTOP", "start"), ("Help", "help"), ("info", "help"),
     ("stop please", None), ("don't stop", None), ("yes", None), ("", None),
     ("I feel better", None)],
)  # fmt: skip
def test_only_a_whole_text_that_is_a_keyword_is_one(text: str, keyword: str | None) -> None:
    assert keyword_of(text) == keyword


def test_the_carriers_opt_out_keywords_are_all_there() -> None:
    stops = {word for word, kind in KEYWORDS.items() if kind == "stop"}
    assert stops == {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"}


def test_help_gets_the_help_text_escaped_and_anything_else_an_empty_answer() -> None:
    assert answer("help", "Call <us> & ask") == (
        '<?xml version="1.0" encoding="UTF-8"?><Response><Message>Call &lt;us&gt; &amp; ask'
        "</Message></Response>"
    )
    assert (
        answer("stop", "x")
        == answer(None, "x")
        == ('<?xml version="1.0" encoding="UTF-8"?><Response/>')
    )


def _signed(form: dict[str, str], token: str = TOKEN, algorithm: str | None = None) -> Headers:
    signature = RequestValidator(token).compute_signature(URL, form, algorithm)
    headers = {SIGNATURE_HEADER: signature}
    if algorithm:
        headers[SIGNATURE_SETTINGS_HEADER] = f"key=webhooks_sharedkey_1,algorithm={algorithm}"
    return Headers(headers)


def test_a_request_the_gateway_signed_is_verified_with_sha1_or_sha256() -> None:
    body = form_of(urlencode(FORM).encode())
    assert verified(TOKEN, URL, body, _signed(FORM))
    assert verified(TOKEN, URL, body, _signed(FORM, algorithm="HMAC_SHA256"))


def test_any_change_to_the_signed_request_fails_the_check() -> None:
    headers = _signed(FORM)
    assert not verified(TOKEN, URL, form_of(urlencode({**FORM, "Body": "START"}).encode()), headers)
    assert not verified(TOKEN, URL + "?x=1", form_of(urlencode(FORM).encode()), headers)
    assert not verified("another-token", URL, form_of(urlencode(FORM).encode()), headers)
    assert not verified(TOKEN, URL, form_of(urlencode(FORM).encode()), Headers({}))


def test_a_form_that_is_not_utf8_is_refused() -> None:
    with pytest.raises(UnicodeDecodeError):
        form_of(b"Body=%FF\xff")


@given(st.from_regex(r"\+[1-9][0-9]{7,14}", fullmatch=True))
def test_a_number_as_people_type_it_keys_like_the_gateways_e164(number: str) -> None:
    typed = f"{number[:2]} ({number[2:5]}) {number[5:8]}-{number[8:]}"
    assert normalized_phone(typed) == number
    assert recipient_key("s" * 32, "sms", typed) == recipient_key("s" * 32, "sms", number)


def test_a_recipient_key_is_neither_the_patient_key_of_the_same_text_nor_another_channels() -> None:
    secret = "s" * 32
    sms = recipient_key(secret, "sms", "+15550100001")
    assert len(sms) == 64
    assert sms != patient_key(secret, "+15550100001")
    assert sms != recipient_key(secret, "email", "+15550100001")
    assert sms != recipient_key("t" * 32, "sms", "+15550100001")
