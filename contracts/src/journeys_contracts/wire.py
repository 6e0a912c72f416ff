"""Base model for every record on Kafka: camelCase on the wire, tolerant of added fields."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


def _require_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("timestamps must carry a timezone")
    return value.astimezone(UTC)


UtcDatetime = Annotated[datetime, AfterValidator(_require_utc)]


class WireModel(BaseModel):
    """Readers ignore fields they do not know, so producers may add fields within a version."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        frozen=True,
        extra="ignore",
        ser_json_timedelta="float",
    )

    def to_json(self) -> bytes:
        return self.model_dump_json(by_alias=True).encode()
