"""Poison records go to the dead-letter topic with the reason in headers; nothing is dropped."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence

from prometheus_client import Counter

log = logging.getLogger(__name__)

DATA_KEY_FIELD = "dataKey"
"""A `start_run.v2`'s wrapped data key: never copied to the dead-letter topic, whose retention
an erasure cannot shorten."""
STRIPPED_HEADER = "dlq_stripped"
"""Names the fields removed from a dead-lettered value."""

DLQ_RECORDS = Counter(
    "journeys_dlq_records_total", "Records sent to the dead-letter topic", ["source_topic", "stage"]
)


def dlq_headers(
    original: Sequence[tuple[str, bytes]] | None,
    *,
    topic: str,
    partition: int,
    offset: int,
    stage: str,
    error: str,
) -> list[tuple[str, bytes]]:
    """Keep the original headers and add where the record came from and why it failed.

    `error` must not contain patient data: callers pass exception types and field paths,
    never the record's values.
    """
    headers = [(k, v) for k, v in (original or ()) if not k.startswith("dlq_")]
    headers += [
        ("dlq_source_topic", topic.encode()),
        ("dlq_source_partition", str(partition).encode()),
        ("dlq_source_offset", str(offset).encode()),
        ("dlq_stage", stage.encode()),
        ("dlq_error", error[:2000].encode()),
    ]
    DLQ_RECORDS.labels(source_topic=topic, stage=stage).inc()
    log.warning(
        "record sent to dead-letter topic",
        extra={"source_topic": topic, "partition": partition, "offset": offset, "stage": stage},
    )
    return headers


def describe_validation_error(exc: Exception) -> str:
    """A reason that names fields and error kinds, without echoing input values."""
    errors = getattr(exc, "errors", None)
    if callable(errors):
        try:
            parts = [
                f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('type')}"
                for e in errors(include_input=False, include_url=False)
            ]
            return f"{type(exc).__name__}: " + "; ".join(parts)
        except TypeError:
            pass
    return type(exc).__name__


def without_data_key(value: bytes | None) -> tuple[bytes | None, bool]:
    """A value without its top-level wrapped data key, and whether it changed: a DLQ copy must
    not outlive the key's deletion (erasure) with a way back to the patient's data. A value that
    names the field but cannot be parsed is dropped whole (b""); others are kept as they are."""
    named = value is not None and DATA_KEY_FIELD.encode() in value
    if not value or (not named and b"\\u" not in value):  # an escaped name could spell it
        return value, False
    try:
        data = json.loads(value)
    except (ValueError, RecursionError):  # not JSON, or nested past the parser's depth
        return (b"", True) if named else (value, False)
    if not isinstance(data, dict) or DATA_KEY_FIELD not in data:
        return value, False
    del data[DATA_KEY_FIELD]
    return json.dumps(data, separators=(",", ":")).encode(), True
