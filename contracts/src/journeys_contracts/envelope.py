"""CloudEvents 1.0 in Kafka binary content mode: attributes in headers, data in the value."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

Headers = list[tuple[str, bytes]]

SPEC_VERSION = "1.0"
CONTENT_TYPE = "application/json"


@dataclass(frozen=True)
class CloudEvent:
    """The envelope attributes; `subject` is the run id (or journey id), never patient data."""

    id: str
    type: str
    source: str
    subject: str
    time: datetime

    def headers(self) -> Headers:
        return [
            ("ce_specversion", SPEC_VERSION.encode()),
            ("ce_id", self.id.encode()),
            ("ce_type", self.type.encode()),
            ("ce_source", self.source.encode()),
            ("ce_subject", self.subject.encode()),
            ("ce_time", self.time.isoformat().encode()),
            ("content-type", CONTENT_TYPE.encode()),
        ]


def event_id(run_id: uuid.UUID | str, seq: int) -> str:
    """A deterministic id: a replayed event keeps its id, so consumers can deduplicate by it."""
    namespace = run_id if isinstance(run_id, uuid.UUID) else uuid.UUID(run_id)
    return str(uuid.uuid5(namespace, f"event:{seq}"))


def header(headers: Sequence[tuple[str, bytes]] | None, name: str) -> str | None:
    for key, value in headers or ():
        if key == name:
            return value.decode(errors="replace")
    return None
