"""The senders of signed webhooks (`API_WEBHOOK_SOURCES`): each one's secret and mapping, and
the Standard Webhooks check of a request, made by the `standardwebhooks` package.

The check covers `webhook-id`, `webhook-timestamp` (within the package's tolerance of five
minutes either way) and the body, HMAC-SHA256 under the source's secret. A source may list
several secrets while it rotates them: a request signed under any of them passes.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Annotated

from pydantic import AfterValidator, Field, SecretStr
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from journeys_api.event_mapping import EventMapping

SOURCE_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,99}$")
SECRET_PREFIX = "whsec_"  # noqa: S105  # nosec B105: a prefix, not a secret
# Standard Webhooks: secrets of 24 to 64 random bytes.
SECRET_MIN_BYTES = 24
SECRET_MAX_BYTES = 64


def _secret(value: SecretStr) -> SecretStr:
    """A `whsec_` secret holding 24 to 64 bytes in base64; errors never quote it."""
    text = value.get_secret_value()
    if not text.startswith(SECRET_PREFIX):
        raise ValueError(f"a webhook secret starts with {SECRET_PREFIX}")
    try:
        raw = base64.b64decode(text.removeprefix(SECRET_PREFIX), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"a webhook secret is {SECRET_PREFIX} then base64") from None
    if not SECRET_MIN_BYTES <= len(raw) <= SECRET_MAX_BYTES:
        raise ValueError(f"a webhook secret holds {SECRET_MIN_BYTES} to {SECRET_MAX_BYTES} bytes")
    return value


Secret = Annotated[SecretStr, AfterValidator(_secret)]


class WebhookSource(EventMapping):
    """One sender: its secret (or secrets, while rotating) and where its events' fields are.
    With no `eventId` pointer, the event id is the request's `webhook-id`."""

    secret: Secret | Annotated[list[Secret], Field(min_length=1, max_length=4)]

    def secrets(self) -> list[SecretStr]:
        return self.secret if isinstance(self.secret, list) else [self.secret]


def valid_source_name(name: str) -> bool:
    return bool(SOURCE_NAME.match(name))


def verified(source: WebhookSource, body: bytes, headers: dict[str, str]) -> bool:
    """Whether the request is signed by `source` and timely (never says which part failed)."""
    for secret in source.secrets():
        try:
            Webhook(secret.get_secret_value()).verify(body, headers, json_parse=False)
        except WebhookVerificationError:
            continue
        return True
    return False
