"""Delivery service settings (env prefix `DELIVERY_`)."""

from __future__ import annotations

from functools import cache

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from journeys_contracts.definition import ChannelName
from journeys_delivery.retries import RetryPolicy
from journeys_runtime.settings import ShreddingSettings


class DeliverySettings(ShreddingSettings):
    """The delivery service holds the key-encryption keys: a sealed run's delivery request
    carries the patient's data key wrapped, and the message must be opened to be sent."""

    model_config = SettingsConfigDict(env_prefix="DELIVERY_", extra="ignore", frozen=True)

    ops_host: str = "127.0.0.1"
    ops_port: int = Field(8005, ge=0, le=65535)
    group_id: str = Field("journeys-delivery", description="consumer group, after the prefix")
    batch_max_records: int = Field(500, ge=1, le=10_000, description="requests read at once")
    poll_timeout_ms: int = Field(100, ge=1, le=5_000)
    max_in_flight_per_partition: int = Field(
        1000, ge=1, le=100_000, description="messages of one partition being sent at once; "
        "reading the partition pauses above it",
    )  # fmt: skip
    trim_seconds: float = Field(
        5.0, ge=0, le=3600, description="how often the requests already sent and reported are "
        "deleted from the owned partitions (a sealed one holds a wrapped data key); 0: never",
    )  # fmt: skip
    revoke_grace_seconds: float = Field(
        15.0, gt=0, le=120, description="how long a partition taken away waits for its messages "
        "in flight to finish before the next owner sends them again",
    )  # fmt: skip
    default_channel: ChannelName = Field(
        "console",
        description="the channel of a request that names none (as an executor older "
        "than EXECUTOR_DEFAULT_CHANNEL wrote them); keep it the same as that",
    )
    console_reveal_patient_data: bool = Field(
        False, description="print patient id and message text on the console channel"
    )
    webhook_url: str | None = Field(
        None, description="the messaging gateway the webhook channel POSTs each message to"
    )
    webhook_secret: SecretStr | None = Field(
        None, description="the Standard Webhooks signing secret (`whsec_` + base64), shared "
        "with the gateway; a file of the Secret in Kubernetes",
    )  # fmt: skip
    webhook_timeout_seconds: float = Field(
        10.0, gt=0, le=120, description="longest wait for the gateway's answer to one message"
    )
    webhook_concurrency: int = Field(
        64, ge=1, le=1024, description="messages in flight to the gateway at once"
    )
    webhook_rate_per_second: float = Field(
        0, ge=0, le=100_000,
        description="sends to the gateway started per second at most, per replica; 0: no limit",
    )  # fmt: skip
    webhook_max_attempts: int = Field(
        8, ge=1, le=50, description="sends of one message by webhook before it is given up"
    )
    sms_url: str | None = Field(
        None, description="base URL of an SMS gateway with Twilio's REST API shape "
        "(`https://api.twilio.com` for Twilio itself)",
    )  # fmt: skip
    sms_account_sid: str | None = Field(None, description="the gateway account (Basic auth user)")
    sms_auth_token: SecretStr | None = Field(
        None, description="the gateway's auth token (Basic auth password); a file of the Secret"
    )
    sms_from: str | None = Field(None, description="the sending number, E.164")
    sms_timeout_seconds: float = Field(10.0, gt=0, le=120)
    sms_concurrency: int = Field(16, ge=1, le=1024, description="messages in flight at once")
    sms_rate_per_second: float = Field(
        0, ge=0, le=100_000,
        description="SMS sent per second at most, per replica (the provider's quota divided by "
        "the replicas); 0: no limit",
    )  # fmt: skip
    sms_max_attempts: int = Field(6, ge=1, le=50, description="sends of one SMS before giving up")
    smtp_host: str | None = Field(None, description="the SMTP server of the email channel")
    smtp_port: int = Field(587, ge=1, le=65535)
    smtp_username: str | None = None
    smtp_password: SecretStr | None = Field(None, description="a file of the Secret")
    smtp_from: str | None = Field(None, description="the sender address, e.g. care@clinic.org")
    smtp_starttls: bool = Field(True, description="upgrade to TLS (STARTTLS) before sending")
    smtp_ca_file: str | None = Field(
        None, description="CA bundle trusted for the server's certificate; unset: the system's"
    )
    smtp_timeout_seconds: float = Field(30.0, gt=0, le=300)
    smtp_concurrency: int = Field(8, ge=1, le=256, description="SMTP sessions at once")
    email_rate_per_second: float = Field(
        0, ge=0, le=100_000,
        description="emails sent per second at most, per replica; 0: no limit",
    )  # fmt: skip
    email_max_attempts: int = Field(
        6, ge=1, le=50, description="sends of one email before giving up"
    )
    retry_initial_seconds: float = Field(
        2.0, gt=0, le=3600, description="backoff before a second attempt: a random wait up to "
        "this, doubling per attempt (full jitter), at least the provider's Retry-After",
    )  # fmt: skip
    retry_max_seconds: float = Field(
        600.0, gt=0, le=86400, description="the longest backoff between two attempts"
    )

    def retry_policy(self, channel: str) -> RetryPolicy:
        """How often and how patiently a channel's messages are tried; the console only once
        (it does not fail)."""
        attempts = {"webhook": self.webhook_max_attempts, "sms": self.sms_max_attempts,
                    "email": self.email_max_attempts}.get(channel, 1)  # fmt: skip
        return RetryPolicy(attempts, self.retry_initial_seconds, self.retry_max_seconds)

    @model_validator(mode="after")
    def _channels_complete(self) -> DeliverySettings:
        if (self.webhook_url is None) != (self.webhook_secret is None):
            raise ValueError(
                "DELIVERY_WEBHOOK_URL and DELIVERY_WEBHOOK_SECRET are set together or not at all"
            )
        sms = (self.sms_url, self.sms_account_sid, self.sms_auth_token, self.sms_from)
        if any(v is not None for v in sms) and not all(v is not None for v in sms):
            raise ValueError(
                "DELIVERY_SMS_URL, DELIVERY_SMS_ACCOUNT_SID, DELIVERY_SMS_AUTH_TOKEN and "
                "DELIVERY_SMS_FROM are set together or not at all"
            )
        if (self.smtp_host is None) != (self.smtp_from is None):
            raise ValueError("DELIVERY_SMTP_HOST and DELIVERY_SMTP_FROM are set together")
        return self


@cache
def get_settings() -> DeliverySettings:
    return DeliverySettings()
