"""Records on `journeys.definitions.v1` (compacted, keyed by journey id)."""

from __future__ import annotations

from typing import Literal
from uuid import UUID

from pydantic import ValidationError

from journeys_contracts.definition import JourneyDefinition
from journeys_contracts.wire import UtcDatetime, WireModel, raise_for_unknown_type


class JourneyDefined(WireModel):
    """A journey was created; journeys are immutable, so this is its only record."""

    type: Literal["journeys.journey.defined.v1"] = "journeys.journey.defined.v1"
    journey_id: UUID
    definition: JourneyDefinition
    created_at: UtcDatetime


def decode_journey(data: bytes) -> JourneyDefined:
    """Parse a definitions-topic record; raises `UnknownRecordType` for a record type of a
    newer version (skip it), pydantic.ValidationError on anything malformed (poison)."""
    try:
        return JourneyDefined.model_validate_json(data)
    except ValidationError as exc:
        raise_for_unknown_type(exc)
