"""CloudEvents 1.0 in Kafka binary content mode: attributes in headers, data in the value."""

from __future__ import annotations

import hashlib
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
            _SPEC_VERSION_HEADER,
            ("ce_id", self.id.encode()),
            ("ce_type", self.type.encode()),
            ("ce_source", self.source.encode()),
            ("ce_subject", self.subject.encode()),
            ("ce_time", self.time.isoformat().encode()),
            _CONTENT_TYPE_HEADER,
        ]


_SPEC_VERSION_HEADER = ("ce_specversion", SPEC_VERSION.encode())
_CONTENT_TYPE_HEADER = ("content-type", CONTENT_TYPE.encode())


def event_id(run_id: uuid.UUID | str, seq: int) -> str:
    """A deterministic id: a replayed event keeps its id, so consumers can deduplicate by it.

    `str(uuid.uuid5(run_id, f"event:{seq}"))`, computed without building UUID objects: the
    executor names every event it emits, and the objects were most of the cost.
    """
    namespace = run_id.bytes if isinstance(run_id, uuid.UUID) else uuid.UUID(run_id).bytes
    return uuid5_text(namespace, b"event:%d" % seq)


def uuid5_text(namespace: bytes, name: bytes) -> str:
    """`str(uuid.uuid5(UUID(bytes=namespace), name))` without the UUID objects."""
    digest = bytearray(hashlib.sha1(namespace + name, usedforsecurity=False).digest())
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = digest[:16].hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def sealed_event_id(v1_event_id: str) -> str:
    """The `ce_id` of a `journeys.events.v2` event: `uuid5(<its v1 twin's ce_id>, "sealed")`.

    As stable as the twin's (a replayed event keeps it), and different from it, so a consumer
    that deduplicates by `ce_id` across both topics never takes one for the other."""
    return str(uuid.uuid5(uuid.UUID(v1_event_id), "sealed"))


def header(headers: Sequence[tuple[str, bytes]] | None, name: str) -> str | None:
    for key, value in headers or ():
        if key == name:
            return value.decode(errors="replace")
    return None
