"""The bodies `POST /events` takes, read into `InboundEvent`s, or refused whole.

Four forms, told apart by `Content-Type`: `application/json` with one event or
`{"events": [...]}`, and CloudEvents 1.0 structured JSON, one event
(`application/cloudevents+json`) or a JSON array of them (`application/cloudevents-batch+json`).
A CloudEvent's `id` is the event id, `subject` the patient id, `time` when it happened.

Every bad event is named by its index and field (`["body", "events", 3, "patientId"]`), and
one bad event refuses the whole batch. Error messages say what is wrong, never what was sent.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import orjson
from fastapi.exceptions import RequestValidationError
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
)
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError
from starlette.exceptions import HTTPException

from journeys_api.bodies import MAX_PATIENT_ID_LENGTH, unstorable
from journeys_api.errors import Loc, TooLargeError
from journeys_contracts.commands import EventId
from journeys_contracts.definition import EventType

MAX_EVENTS = 1000
JSON = "application/json"
CLOUDEVENT = "application/cloudevents+json"
CLOUDEVENTS_BATCH = "application/cloudevents-batch+json"
MEDIA_TYPES = (JSON, CLOUDEVENT, CLOUDEVENTS_BATCH)
# CloudEvents 1.0: extension attribute names are lowercase letters and digits.
_EXTENSION_NAME = re.compile(r"^[a-z0-9]{1,20}$")
_TIME_HINT = "an ISO 8601 time with a UTC offset, e.g. 2026-12-03T10:00:00Z"


@dataclass(frozen=True)
class InboundEvent:
    """One event as received: `occurred_at` None means "when it was received"."""

    event_id: str
    patient_id: str
    type: str
    occurred_at: datetime | None
    data: dict[str, Any]


def _non_blank(value: str) -> str:
    if not value.strip():
        raise PydanticCustomError("value_error", "must have a non-blank character")
    return value


def _patient_id(value: Any) -> str:
    """A non-blank string or an integer, as the patient context's `id`: the integer 4711 and
    the string "4711" name the same patient."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise PydanticCustomError("value_error", "must be a non-empty string or an integer")
    text = str(value)
    if not text.strip() or len(text) > MAX_PATIENT_ID_LENGTH:
        raise PydanticCustomError(
            "value_error", f"must have 1 to {MAX_PATIENT_ID_LENGTH} non-blank characters"
        )
    return text


def _time(value: Any) -> datetime:
    if not isinstance(value, str):
        raise PydanticCustomError("string_type", f"must be {_TIME_HINT}")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise PydanticCustomError("datetime_parsing", f"must be {_TIME_HINT}") from None
    if parsed.tzinfo is None:
        raise PydanticCustomError(
            "timezone_aware", "must carry a UTC offset (Z or +hh:mm), e.g. 2026-12-03T10:00:00Z"
        )
    return parsed.astimezone(UTC)


InEventId = Annotated[EventId, AfterValidator(_non_blank)]
PatientId = Annotated[str, BeforeValidator(_patient_id)]
Time = Annotated[datetime, BeforeValidator(_time)]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EventIn(_In):
    """One event in the API's own shape."""

    model_config = ConfigDict(alias_generator=to_camel)

    event_id: InEventId
    patient_id: PatientId
    type: EventType
    occurred_at: Time | None = None
    data: dict[str, Any] | None = None


class CloudEventIn(_In):
    """A CloudEvents 1.0 event in structured JSON; extension attributes are allowed and not
    kept (they are checked in `_extension_errors`)."""

    model_config = ConfigDict(extra="allow")

    specversion: Literal["1.0"]
    id: InEventId
    source: Annotated[str, Field(min_length=1, max_length=1000)]
    type: EventType
    subject: PatientId
    time: Time | None = None
    datacontenttype: str | None = None
    dataschema: str | None = None
    data: dict[str, Any] | None = None


_MANY: dict[type[_In], TypeAdapter[list[Any]]] = {
    EventIn: TypeAdapter(list[EventIn]), CloudEventIn: TypeAdapter(list[CloudEventIn])
}  # fmt: skip


def media_type(content_type: str | None) -> str:
    """The body's media type, one of `MEDIA_TYPES`, else 415. A `charset`, if given, must be
    UTF-8: JSON has no other."""
    media, _, params = (content_type or "").partition(";")
    media = media.strip().lower()
    charset = next(
        (v.strip().strip('"').lower() for k, _, v in
         (p.partition("=") for p in params.split(";")) if k.strip().lower() == "charset"),
        "utf-8",
    )  # fmt: skip
    if media not in MEDIA_TYPES or charset not in ("utf-8", "utf8"):
        raise HTTPException(415, f"Content-Type must be one of {', '.join(MEDIA_TYPES)} (UTF-8)")
    return media


def parse(content_type: str | None, body: bytes) -> list[InboundEvent]:
    """The events of a body, in order; 415, 413 (over `MAX_EVENTS`) or 422 naming each bad
    event's index and field. All or nothing."""
    media = media_type(content_type)
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise RequestValidationError(
            [{"type": "json_invalid", "loc": ("body", exc.pos), "msg": "JSON decode error"}]
        ) from None
    if media == CLOUDEVENT:
        return _read([document], CloudEventIn, lambda _: ("body",))
    if media == CLOUDEVENTS_BATCH:
        if not isinstance(document, list):
            raise _not("a JSON array of CloudEvents", ("body",), "list_type")
        return _read(_counted(document), CloudEventIn, lambda i: ("body", i))
    if isinstance(document, dict) and "events" in document:
        extra = [k for k in document if k != "events"]
        if extra:
            raise RequestValidationError([
                {"type": "extra_forbidden", "loc": ("body", k), "msg":
                 "Extra inputs are not permitted beside events"} for k in extra
            ])  # fmt: skip
        if not isinstance(document["events"], list):
            raise _not("a JSON array of events", ("body", "events"), "list_type")
        return _read(_counted(document["events"]), EventIn, lambda i: ("body", "events", i))
    return _read([document], EventIn, lambda _: ("body",))


def _counted(items: list[Any]) -> list[Any]:
    if len(items) > MAX_EVENTS:
        raise TooLargeError(
            f"a request carries at most {MAX_EVENTS} events; this one carries {len(items)}: "
            "send them in several requests"
        )
    return items


def _not(what: str, loc: Loc, error_type: str) -> RequestValidationError:
    return RequestValidationError([{"type": error_type, "loc": tuple(loc),
                                    "msg": f"Input should be {what}"}])  # fmt: skip


def _read(
    items: list[Any], model: type[EventIn] | type[CloudEventIn], at: Any
) -> list[InboundEvent]:
    events: list[InboundEvent] = []
    errors: list[dict[str, Any]] = []
    try:  # all at once: one call into pydantic's core, when all is well
        valid = list(enumerate(_MANY[model].validate_python(items)))
    except ValidationError:  # one by one, to name each bad event in words of this API
        valid = _each(items, model, at, errors)
    for index, parsed in valid:
        loc: tuple[str | int, ...] = at(index)
        event = _inbound(parsed)
        names = ("eventId", "patientId") if isinstance(parsed, EventIn) else ("id", "subject")
        found = [*_extension_errors(parsed), *_storable_errors(event, *names)]
        errors.extend({"type": "value_error", "loc": (*loc, *at_), "msg": msg}
                      for at_, msg in found)  # fmt: skip
        events.append(event)
    if errors:
        prefix = len(at(0))  # each event's errors together, in the order of the events
        raise RequestValidationError(sorted(errors, key=lambda e: e["loc"][:prefix]))
    return events


def _each(
    items: list[Any], model: type[EventIn] | type[CloudEventIn], at: Any,
    errors: list[dict[str, Any]],
) -> list[tuple[int, EventIn | CloudEventIn]]:  # fmt: skip
    valid: list[tuple[int, EventIn | CloudEventIn]] = []
    for index, item in enumerate(items):
        loc: tuple[str | int, ...] = at(index)
        if not isinstance(item, dict):
            errors.append({"type": "model_type", "loc": loc, "msg": "Input should be an object"})
            continue
        try:
            valid.append((index, model.model_validate(item)))
        except ValidationError as exc:
            errors.extend(
                {"type": e["type"], "loc": (*loc, *e["loc"]), "msg": e["msg"]}
                for e in exc.errors(include_url=False, include_input=False, include_context=False)
            )
    return valid


def _inbound(parsed: EventIn | CloudEventIn) -> InboundEvent:
    if isinstance(parsed, EventIn):
        return InboundEvent(
            parsed.event_id, parsed.patient_id, parsed.type, parsed.occurred_at, parsed.data or {}
        )
    return InboundEvent(parsed.id, parsed.subject, parsed.type, parsed.time, parsed.data or {})


def _extension_errors(parsed: EventIn | CloudEventIn) -> list[tuple[Loc, str]]:
    if not isinstance(parsed, CloudEventIn):
        return []
    found: list[tuple[Loc, str]] = []
    content_type = parsed.datacontenttype
    if content_type is not None and not _is_json(content_type):
        found.append((("datacontenttype",), "must be a JSON media type: data is read as JSON"))
    for name in parsed.model_extra or {}:
        if name == "data_base64":
            found.append(((name,), "binary data is not accepted: send `data` as a JSON object"))
        elif not _EXTENSION_NAME.match(name):
            found.append(((name,), "not a CloudEvents attribute name (lowercase letters and "
                                   "digits, at most 20)"))  # fmt: skip
    return found


def _is_json(content_type: str) -> bool:
    media = content_type.partition(";")[0].strip().lower()
    return media in ("application/json", "text/json") or media.endswith("+json")


def _storable_errors(event: InboundEvent, id_name: str, patient_name: str) -> list[tuple[Loc, str]]:
    found: list[tuple[Loc, str]] = []
    if "\x00" in event.event_id:
        found.append(((id_name,), "must not contain the NUL character (U+0000)"))
    if "\x00" in event.patient_id:
        found.append(((patient_name,), "must not contain the NUL character (U+0000)"))
    found.extend(unstorable(event.data, ("data",)))
    return found
