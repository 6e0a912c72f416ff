"""Where a sender keeps its event's id, patient id, type, time and data: JSON pointers (RFC 6901)
set per webhook source or topic, and the `InboundEvent` they read from a document.

An event read here passes the same checks as one sent to `POST /events` (the same model), so
every way in accepts the same events. Errors name the field and where it was looked for (the
pointer, or a header), never the value found there.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError, model_validator
from pydantic.alias_generators import to_camel

from journeys_api.bodies import unstorable
from journeys_api.events_body import EventIn, InboundEvent
from journeys_contracts.definition import EventType

_MISSING = object()


def parts(pointer: str) -> list[str]:
    """The reference tokens of a JSON pointer; `""` is the whole document."""
    if pointer == "":
        return []
    if not pointer.startswith("/"):
        raise ValueError(f"a JSON pointer is empty or starts with '/': {pointer!r}")
    tokens = pointer[1:].split("/")
    for token in tokens:
        if "~" in token.replace("~0", "").replace("~1", ""):
            raise ValueError(f"'~' must be escaped as ~0 in a JSON pointer: {pointer!r}")
    return [t.replace("~1", "/").replace("~0", "~") for t in tokens]


def _pointer(value: str) -> str:
    parts(value)
    return value


Pointer = Annotated[str, AfterValidator(_pointer)]


def resolve(document: Any, pointer: str) -> Any:
    """The value at `pointer`, or `_MISSING` (an array index is decimal without leading zeros)."""
    node = document
    for part in parts(pointer):
        if isinstance(node, dict):
            if part not in node:
                return _MISSING
            node = node[part]
        elif isinstance(node, list):
            if not part.isdigit() or (len(part) > 1 and part.startswith("0")):
                return _MISSING
            if int(part) >= len(node):
                return _MISSING
            node = node[int(part)]
        else:
            return _MISSING
    return node


class EventMapping(BaseModel):
    """Pointers into a sender's JSON document. `type` or `typeConstant`: a sender that sends
    one kind of event may name it here instead. No `eventId` pointer: the way in gives one
    (a webhook's `webhook-id`). `data` `""` is the whole document."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, alias_generator=to_camel, populate_by_name=True
    )

    event_id: Pointer | None = None
    patient_id: Pointer = "/patientId"
    type: Pointer | None = None
    type_constant: EventType | None = None
    occurred_at: Pointer | None = None
    data: Pointer = ""

    @model_validator(mode="after")
    def _one_type(self) -> EventMapping:
        if (self.type is None) == (self.type_constant is None):
            raise ValueError("set exactly one of type (a pointer) and typeConstant")
        return self


@dataclass(frozen=True)
class At:
    """A field read at a pointer; `label` names where in errors (default: the pointer)."""

    pointer: str
    label: str | None = None


@dataclass(frozen=True)
class Given:
    """A field given beside the document (a header, a constant), named `label` in errors."""

    value: Any
    label: str


Source = At | Given


@dataclass(frozen=True)
class MappingError:
    field: str
    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.field} at {self.where}: {self.message}"


class MappingFailedError(Exception):
    """The document does not hold a valid event where the mapping looks."""

    def __init__(self, errors: list[MappingError]) -> None:
        super().__init__("; ".join(map(str, errors)))
        self.errors = errors


REQUIRED = ("eventId", "patientId", "type")


def sources_of(mapping: EventMapping, event_id: Given | None = None) -> dict[str, Source]:
    """Where `mapping` finds each field; `event_id` when it names no pointer for it."""
    found: dict[str, Source] = {"patientId": At(mapping.patient_id), "data": At(mapping.data)}
    if mapping.event_id is not None:
        found["eventId"] = At(mapping.event_id)
    elif event_id is not None:
        found["eventId"] = event_id
    if mapping.type is not None:
        found["type"] = At(mapping.type)
    else:
        found["type"] = Given(mapping.type_constant, "typeConstant")
    if mapping.occurred_at is not None:
        found["occurredAt"] = At(mapping.occurred_at)
    return found


def read(document: Any, sources: Mapping[str, Source]) -> InboundEvent:
    """The event at `sources` in `document`; `MappingFailedError` naming each bad field."""
    values: dict[str, Any] = {}
    where: dict[str, str] = {}
    errors: list[MappingError] = []
    for name, source in sources.items():
        if isinstance(source, At):
            value = resolve(document, source.pointer)
            where[name] = source.label or (source.pointer or '""')
        else:
            value, where[name] = source.value, source.label
        if value is _MISSING or value is None:
            if name in REQUIRED:
                errors.append(MappingError(name, where[name], "missing"))
            continue
        # An upstream's numeric id is its id: 4711 and "4711" name the same event.
        if name == "eventId" and isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        values[name] = value
    for name in REQUIRED:
        if name not in sources:
            errors.append(MappingError(name, "(not mapped)", "missing"))
    if errors:
        raise MappingFailedError(errors)
    try:
        parsed = EventIn.model_validate(values)
    except ValidationError as exc:
        raise MappingFailedError([
            MappingError(str(e["loc"][0]), where.get(str(e["loc"][0]), "?"),
                         e["msg"] if len(e["loc"]) == 1 else f"{e['loc'][1:]}: {e['msg']}")
            for e in exc.errors(include_url=False, include_input=False, include_context=False)
        ]) from None  # fmt: skip
    event = InboundEvent(
        parsed.event_id, parsed.patient_id, parsed.type, parsed.occurred_at, parsed.data or {}
    )
    _storable(event, where)
    return event


def _storable(event: InboundEvent, where: Mapping[str, str]) -> None:
    found = [
        MappingError(name, where[name], "must not contain the NUL character (U+0000)")
        for name, value in (("eventId", event.event_id), ("patientId", event.patient_id))
        if "\x00" in value
    ]
    base = "" if where["data"] == '""' else where["data"]
    found += [
        MappingError("data", base + "".join(f"/{p}" for p in loc[1:]), msg)
        for loc, msg in unstorable(event.data, ("data",))
    ]
    if found:
        raise MappingFailedError(found)
