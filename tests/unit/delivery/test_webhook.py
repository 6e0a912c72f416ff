"""What a gateway's answer means: 2xx sent; 408, 429 and 5xx worth another try; any other 4xx
final, since the same request would be refused again."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from uuid import UUID

import pytest

from journeys_contracts.deliveries import DeliveryRequested
from journeys_delivery.channels import Failed, Sent
from journeys_delivery.channels.email import single_address
from journeys_delivery.channels.webhook import body, outcome_of


@pytest.mark.parametrize("status", [200, 201, 202, 204])
def test_a_2xx_is_sent(status: int) -> None:
    assert outcome_of(status) == Sent()


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_a_timeout_a_throttle_or_a_server_error_is_worth_another_try(status: int) -> None:
    assert outcome_of(status) == Failed(reason=f"gateway answered {status}", permanent=False)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410, 413, 422])
def test_another_4xx_is_final(status: int) -> None:
    assert outcome_of(status) == Failed(reason=f"gateway answered {status}", permanent=True)


def test_a_throttle_carries_the_providers_retry_after() -> None:
    assert outcome_of(429, "30") == Failed("gateway answered 429", permanent=False, retry_after=30)
    assert outcome_of(503, "not a time") == Failed("gateway answered 503", permanent=False)


def test_the_body_names_the_message_by_the_id_the_gateway_dedups_on() -> None:
    request = DeliveryRequested(
        message_id=UUID(int=7), run_id=UUID(int=1), journey_id=UUID(int=2), node_id="hello",
        patient_key="a" * 64, patient_id="p-1", message="Hola", attempt=1,
        requested_at=datetime(2026, 12, 4, 8, 0, tzinfo=UTC),
    )  # fmt: skip
    sent = json.loads(body(request))
    assert sent["type"] == "message.send"
    assert sent["timestamp"] == "2026-12-04T08:00:00Z"
    assert sent["data"]["messageId"] == str(UUID(int=7))
    assert (sent["data"]["patientId"], sent["data"]["message"]) == ("p-1", "Hola")


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_is_not_followed_and_is_final(status: int) -> None:
    assert outcome_of(status) == Failed(reason=f"gateway answered {status}", permanent=True)


@pytest.mark.parametrize(
    ("value", "address"),
    [("pat@example.org", "pat@example.org"), ("a@x.org, b@y.org", None), ("a@x.org;b@y.org", None),
     ("Pat <pat@example.org>", None), ("pat@example.org\r\nBcc: x@y.org", None),
     ("no-at-sign", None), ("", None), (None, None)],
)  # fmt: skip
def test_an_email_goes_to_exactly_one_plain_address(value: str | None, address: str | None) -> None:
    assert single_address(value) == address
