"""Base model for every record on Kafka: camelCase on the wire, tolerant of added fields and
of record types a newer version added."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, NoReturn

from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError
from pydantic.alias_generators import to_camel

# Our naming of record types: `journeys.<noun>.<verb>.v<N>`. A newer version names its types
# the same way; anything else in `type` is not a record from us.
_TYPE_NAME = re.compile(r"journeys(\.[a-z][a-z0-9_]*)+\.v[1-9][0-9]{0,3}")
_KNOWN_TYPES: set[str] = set()


class UnknownRecordType(ValueError):  # noqa: N818 - not an error: a record to skip
    """A record whose `type` is spelled like ours but is none this version knows: written by a
    newer version (a type added within the topic's `vN`, or a later `vN` type on the same topic).

    Raised by `decode_command`, `decode_event`, `decode_journey` and `decode_audit` instead of
    a `ValidationError`. Readers skip such a record, count it and move on: it is not poison, and
    dead-lettering it would leave gaps during every rolling upgrade. Everything else that fails
    to decode (bad JSON, a known type with bad fields, a `type` that is not a type name, a known
    type of another topic) still raises `ValidationError` and is poison. `record_type` is safe
    to log and to use as a metric label only after bounding cardinality: it is a type name, not
    patient data, but a producer chooses it.
    """

    def __init__(self, record_type: str) -> None:
        super().__init__(f"unknown record type '{record_type}' (written by a newer version?)")
        self.record_type = record_type


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

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        field = cls.model_fields.get("type")
        if field is not None and isinstance(field.default, str):
            _KNOWN_TYPES.add(field.default)

    def to_json(self) -> bytes:
        return self.model_dump_json(by_alias=True).encode()


def raise_for_unknown_type(exc: ValidationError) -> NoReturn:
    """Re-raise a decoding failure as `UnknownRecordType` when its cause is a `type` tag from a
    newer version, else as it is. Only the failure path pays for this check."""
    for error in exc.errors():
        if error["type"] == "union_tag_invalid" and isinstance(error["input"], dict):
            tag = error["input"].get("type")
        elif error["type"] == "literal_error" and error["loc"] == ("type",):
            tag = error["input"]
        else:
            continue
        if isinstance(tag, str) and _is_new_type_name(tag):
            raise UnknownRecordType(tag) from exc
    raise exc


def _is_new_type_name(tag: str) -> bool:
    return len(tag) <= 200 and tag not in _KNOWN_TYPES and _TYPE_NAME.fullmatch(tag) is not None
