"""One record of another team's topic read into a patient event, or the reason it cannot be.

Reasons name headers, fields and pointers, never what the record held: they travel in the
dead-letter record's headers and in logs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import orjson

from journeys_api import event_mapping
from journeys_api.event_mapping import At, MappingFailedError, Source
from journeys_api.events_body import InboundEvent
from journeys_api.ingest.settings import TopicSource
from journeys_api.json_depth import depth

# As the API's bodies (API_MAX_JSON_DEPTH's default): the command carries the data on, and
# the services reading commands parse deeper than this, never less.
MAX_DEPTH = 32
STRUCTURED = "application/cloudevents+json"


class PoisonError(Exception):
    """A record that will never make an event: dead-lettered with `reason` and `stage`."""

    def __init__(self, stage: str, reason: str) -> None:
        super().__init__(reason)
        self.stage, self.reason = stage, reason


def read(
    source: TopicSource, value: bytes | None, headers: Sequence[tuple[str, bytes | None]],
    timestamp_ms: int,
) -> InboundEvent:  # fmt: skip
    """The record's event; `PoisonError` otherwise. With no time of its own, the event
    happened when the record was produced (the same on every redelivery)."""
    meta = _headers(headers)
    document = _json(value, "value")
    if source.format == "json":
        sources = event_mapping.sources_of(source.mapping())
    elif "ce_specversion" in meta:
        document, sources = _binary(meta, document, source.patient_id)
    elif _media(meta.get("content-type")) == STRUCTURED or (
        isinstance(document, dict) and "specversion" in document
    ):
        sources = _structured(document, source.patient_id)
    else:
        raise PoisonError(
            "ingest.decode", "not a CloudEvent: no ce_specversion header, and the value is not "
            "structured-mode JSON (application/cloudevents+json, or a specversion attribute)",
        )  # fmt: skip
    try:
        event = event_mapping.read(document, sources)
    except MappingFailedError as exc:
        raise PoisonError("ingest.invalid", str(exc)) from None
    if event.occurred_at is None:
        event = dataclasses.replace(
            event, occurred_at=datetime.fromtimestamp(timestamp_ms / 1000, UTC)
        )
    return event


def _headers(headers: Sequence[tuple[str, bytes | None]]) -> dict[str, str]:
    found = {}
    for name, raw in headers:
        if raw is None:  # Kafka allows a header without a value; it says nothing here
            continue
        try:
            found[name.lower()] = raw.decode()
        except UnicodeDecodeError:
            raise PoisonError("ingest.decode", f"header {name} is not UTF-8") from None
    return found


def _json(value: bytes | None, what: str) -> Any:
    if not value:
        raise PoisonError("ingest.decode", f"the {what} is empty")
    # Depth never exceeds the number of opening brackets, which is cheap to count.
    if value.count(b"{") + value.count(b"[") > MAX_DEPTH and depth(value) > MAX_DEPTH:
        raise PoisonError("ingest.decode", f"the {what} nests JSON deeper than {MAX_DEPTH}")
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError:
        raise PoisonError("ingest.decode", f"the {what} is not JSON") from None


def _media(content_type: str | None) -> str:
    return (content_type or "").partition(";")[0].strip().lower()


def _is_json(content_type: str) -> bool:
    media = _media(content_type)
    return media in ("application/json", "text/json") or media.endswith("+json")


def _spec(version: Any) -> None:
    if version != "1.0":
        raise PoisonError("ingest.invalid", "specversion must be 1.0")


def _binary(
    meta: dict[str, str], data: Any, patient_pointer: str
) -> tuple[dict[str, Any], dict[str, Source]]:
    """Binary mode: the attributes are `ce_*` headers, the value is the data."""
    _spec(meta["ce_specversion"])
    content_type = meta.get("content-type")
    if content_type is not None and not _is_json(content_type):
        raise PoisonError("ingest.invalid", "header content-type must be a JSON media type")
    document = {"id": meta.get("ce_id"), "type": meta.get("ce_type"),
                "time": meta.get("ce_time"), "data": data}  # fmt: skip
    return document, {
        "eventId": At("/id", "header ce_id"), "type": At("/type", "header ce_type"),
        "occurredAt": At("/time", "header ce_time"), "data": At("/data", "value"),
        "patientId": At(f"/data{patient_pointer}", f"value {patient_pointer}"),
    }  # fmt: skip


def _structured(document: Any, patient_pointer: str) -> dict[str, Source]:
    """Structured mode: one JSON object holds the attributes and the data."""
    if not isinstance(document, dict):
        raise PoisonError("ingest.invalid", "a structured CloudEvent is a JSON object")
    _spec(document.get("specversion"))
    if "data_base64" in document:
        raise PoisonError("ingest.invalid", "data_base64 is not accepted: data must be JSON")
    content_type = document.get("datacontenttype")
    if content_type is not None and not (isinstance(content_type, str) and _is_json(content_type)):
        raise PoisonError("ingest.invalid", "datacontenttype must be a JSON media type")
    return {
        "eventId": At("/id"), "type": At("/type"), "occurredAt": At("/time"),
        "data": At("/data"),
        "patientId": At(f"/data{patient_pointer}", f"/data{patient_pointer}"),
    }  # fmt: skip
