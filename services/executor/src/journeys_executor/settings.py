"""Executor settings (env prefix `EXECUTOR_`)."""

from __future__ import annotations

from functools import cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from journeys_contracts.definition import ChannelName
from journeys_executor.core.decide import Policy
from journeys_executor.core.guard import CapMode, FrequencyCap
from journeys_executor.core.quiet import QuietHours
from journeys_executor.zones import zone_reader
from journeys_runtime.settings import ShreddingSettings


class ExecutorSettings(ShreddingSettings):
    model_config = SettingsConfigDict(env_prefix="EXECUTOR_", extra="ignore", frozen=True)

    app_id: str = Field("journeys-executor", description="consumer group, transactional ids")
    ops_host: str = "127.0.0.1"
    ops_port: int = 8001
    batch_max_records: int = Field(500, ge=1, le=10_000, description="commands per transaction")
    poll_timeout_ms: int = Field(100, ge=1, le=5_000)
    session_timeout_seconds: float = Field(10.0, ge=6, le=300)
    rebalance_timeout_seconds: float = Field(20.0, ge=6, le=600)
    step_timeout_seconds: float = Field(
        15.0, gt=0, le=120, description="longest wait on one transaction step before retrying"
    )
    restore_timeout_seconds: float = Field(300.0, gt=0)
    ended_run_grace_seconds: float = Field(
        3600.0, ge=0, description="how long an ended run's state is kept for late duplicates"
    )
    emit_events_v1: bool = Field(
        True,
        description="also publish a sealed run's events in clear on the v1 events topic "
        "(`sealedTwin` true), for consumers that do not read the v2 topic yet",
    )
    data_key_cache_size: int = Field(
        100_000,
        ge=1,
        description="unwrapped patient data keys kept in memory (least recently used out)",
    )
    commands_trim_seconds: float = Field(
        60.0, ge=0, le=86_400,
        description="how often consumed commands are deleted from the owned partitions; 0: never",
    )  # fmt: skip
    commands_readers: str = Field(
        "",
        description="the other consumer groups reading the commands topic, comma-separated: "
        "trimming waits until each has committed past a command; empty: the projector's "
        "default group, `<JOURNEYS_TOPIC_PREFIX>journeys-projector`",
    )
    event_dedup_seconds: float = Field(
        7 * 86_400, ge=3600,
        description="how long a patient event's id is remembered: a repeat within it has no "
        "effect. At least an hour: a webhook may be replayed within its 5 minutes, and an "
        "ingest or API retry comes within the same window",
    )  # fmt: skip
    event_dedup_max: int = Field(
        1000, ge=1, le=100_000,
        description="event ids remembered per patient at most (the oldest are forgotten first)",
    )  # fmt: skip
    events_kept_seconds: float = Field(
        7 * 86_400, ge=0,
        description="how long a patient event is kept for WAIT_FOR_EVENT look-back; set it to at "
        "least the API's JOURNEYS_MAX_LOOKBACK_SECONDS",
    )  # fmt: skip
    events_kept_max: int = Field(
        20, ge=0, le=1000,
        description="patient events kept per patient for look-back at most (the oldest go first)",
    )  # fmt: skip
    trigger_wait_seconds: float = Field(
        5.0, ge=0, le=60,
        description="longest wait of a patient event for the definitions topic to be read to its "
        "end as of the moment the event was read, so a journey defined before the event was "
        "accepted is matched against it",
    )  # fmt: skip

    quiet_hours: str = Field(
        "", pattern=r"^$|^([01][0-9]|2[0-3]):[0-5][0-9]-([01][0-9]|2[0-3]):[0-5][0-9]$",
        description="`HH:MM-HH:MM` in the patient's time zone when no message goes out (a "
        "journey's `quiet_hours` overrides it); a message due inside is deferred to the first "
        "minute after; empty: none",
    )  # fmt: skip
    default_timezone: str = Field(
        "UTC", description="IANA time zone of a patient whose context has no valid `timezone`"
    )

    default_channel: ChannelName = Field(
        "console",
        description="the channel of a message whose node and patient context name none; set "
        "`DELIVERY_DEFAULT_CHANNEL` to the same (it serves requests that name no channel)",
    )
    frequency_cap_messages: int = Field(
        0, ge=0, le=10_000,
        description="at most this many messages per patient in any rolling window of "
        "`EXECUTOR_FREQUENCY_CAP_WINDOW_SECONDS`, across journeys and channels; 0: no cap",
    )  # fmt: skip
    frequency_cap_window_seconds: float = Field(
        86_400, gt=0, le=31 * 86_400, description="the frequency cap's rolling window"
    )
    frequency_cap_mode: CapMode = Field(
        "suppress",
        description="a message over the cap: `suppress` (message.suppressed, never sent) or "
        "`defer` (message.deferred until the window has room)",
    )

    @field_validator("default_timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @property
    def message_policy(self) -> Policy:
        quiet = QuietHours.parse(self.quiet_hours) if self.quiet_hours else None
        cap = None
        if self.frequency_cap_messages:
            cap = FrequencyCap(
                self.frequency_cap_messages, self.frequency_cap_window_seconds,
                self.frequency_cap_mode,
            )  # fmt: skip
        return Policy(
            quiet=quiet, zone_of=zone_reader(self.default_timezone),
            default_channel=self.default_channel, cap=cap,
        )  # fmt: skip

    def commands_groups(self, own_group: str) -> list[str]:
        """Every group trimming waits for: this one and the other readers."""
        others = [g.strip() for g in self.commands_readers.split(",") if g.strip()]
        return [own_group, *(others or [f"{self.topic_prefix}journeys-projector"])]


@cache
def get_settings() -> ExecutorSettings:
    return ExecutorSettings()
