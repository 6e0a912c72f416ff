"""Ingest settings (env prefix `INGEST_`); Kafka, topics, secrets and database come unprefixed."""

from __future__ import annotations

import re
from functools import cache
from typing import Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel
from pydantic_settings import SettingsConfigDict

from journeys_api.event_mapping import EventMapping, Pointer
from journeys_contracts.definition import EventType
from journeys_runtime.settings import DatabaseSettings, ShreddingSettings

# Kafka's own rule for topic names.
TOPIC_NAME = re.compile(r"^[a-zA-Z0-9._-]{1,249}$")


class TopicSource(BaseModel):
    """One topic of another team's, and how its records hold patient events.

    `cloudevents`: CloudEvents 1.0 in binary mode (`ce_*` headers, the value is the data) or
    structured mode (`application/cloudevents+json`, or a JSON value with `specversion`); the
    patient id is in the data at `patientId`. `json`: plain JSON, every field at a pointer
    into the value (`eventId` required; `type` or `typeConstant`; `data` `""` is the value).
    """

    model_config = ConfigDict(
        extra="forbid", frozen=True, alias_generator=to_camel, populate_by_name=True
    )

    topic: str
    format: Literal["cloudevents", "json"] = "cloudevents"
    patient_id: Pointer = "/patientId"
    event_id: Pointer | None = None
    type: Pointer | None = None
    type_constant: EventType | None = None
    occurred_at: Pointer | None = None
    data: Pointer = ""

    @field_validator("topic")
    @classmethod
    def _topic_name(cls, value: str) -> str:
        if not TOPIC_NAME.match(value):
            raise ValueError("a Kafka topic name: letters, digits, '.', '_', '-', at most 249")
        return value

    @model_validator(mode="after")
    def _fits_format(self) -> TopicSource:
        if self.format == "cloudevents":
            named = [f for f in ("event_id", "type", "type_constant", "occurred_at")
                     if getattr(self, f) is not None] + (["data"] if self.data else [])  # fmt: skip
            if named:
                raise ValueError(
                    f"a CloudEvents topic takes only patientId; its event says {named}"
                )
        else:
            if self.event_id is None:
                raise ValueError("a json topic needs an eventId pointer")
            self.mapping()
        return self

    def mapping(self) -> EventMapping:
        """The pointers of a `json` topic."""
        return EventMapping(
            event_id=self.event_id, patient_id=self.patient_id, type=self.type,
            type_constant=self.type_constant, occurred_at=self.occurred_at, data=self.data,
        )  # fmt: skip


class IngestSettings(DatabaseSettings, ShreddingSettings):
    model_config = SettingsConfigDict(env_prefix="INGEST_", extra="ignore", frozen=True)

    sources: list[TopicSource] = Field(
        [], description="the topics read, JSON: `[{\"topic\": \"clinic.events\", \"format\": "
        "\"cloudevents\", \"patientId\": \"/patientId\"}, ...]`; none: the ingest idles",
    )  # fmt: skip
    group_id: str | None = Field(
        None, description="consumer group; default `<JOURNEYS_TOPIC_PREFIX>journeys-ingest`. A "
        "group new to a topic starts at its earliest record: nothing is lost",
    )  # fmt: skip
    batch_max_records: int = Field(500, ge=1, le=10_000, description="records per poll")
    poll_timeout_ms: int = Field(200, ge=10, le=10_000, description="longest wait for records")
    retry_max_seconds: float = Field(5.0, gt=0, le=300, description="cap of the retry backoff")
    produce_timeout_seconds: float = Field(
        10.0, gt=0, le=120, description="longest wait for Kafka to acknowledge a batch"
    )
    ops_host: str = "127.0.0.1"
    ops_port: int = Field(8004, ge=0, le=65535, description="0 picks a free port")
    patient_data_sealing: bool = Field(
        True, validation_alias=AliasChoices("JOURNEYS_PATIENT_DATA_SEALING"),
        description="seal events (record_patient_event.v2) as the API does",
    )  # fmt: skip

    @property
    def consumer_group(self) -> str:
        return self.group_id or f"{self.topic_prefix}journeys-ingest"

    @model_validator(mode="after")
    def _topics_once(self) -> IngestSettings:
        topics = [s.topic for s in self.sources]
        if len(set(topics)) != len(topics):
            raise ValueError("INGEST_SOURCES names a topic twice")
        return self


@cache
def get_settings() -> IngestSettings:
    return IngestSettings()
