"""Example producer for other teams: publish patient events to your own Kafka topic.

Needs only aiokafka (`pip install aiokafka`). Sends one event as a CloudEvents 1.0 record in
Kafka binary mode, to the broker in `KAFKA_BOOTSTRAP_SERVERS`, and exits:

    KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9092 python produce_patient_events.py \\
        --topic scheduling.patient-events.v1 --type appointment.booked --id ehr-7781 \\
        --patient-id patient-123 --data '{"appointmentId": "a-9", "clinicId": "c-1"}'

The record, and what Patient Journeys' ingest reads from it (the mapping is set
per topic in its configuration):

- header `ce_id`: your event's id, `eventId` to us. Stable across retries and unique per
  patient: the same id for the same patient has effect once, so resend freely.
- header `ce_type`: `type` to us, `^[a-z0-9_.-]+$` (`appointment.booked`): what journeys'
  `triggers`, `exit_on` and `WAIT_FOR_EVENT` nodes name.
- header `ce_time`: `occurredAt` to us, ISO 8601 with an offset (receipt time without it).
- header `ce_source`: your system; `ce_specversion` `1.0`; `content-type` `application/json`.
- value: the event's data, a JSON object, `data` to us. The patient id is in it, under
  `--patient-pointer` (a JSON pointer, `/patientId` by default), which our ingest is
  configured with for your topic.
- no `ce_subject`, and no patient id in the key: headers and keys are patient data's worst
  place (broker tools, logs and metrics show them without the value's access controls).
  With `PATIENT_KEY_SECRET` set, the key is the hex HMAC-SHA256 of the patient id under that
  secret of yours: one patient's events stay in order, and the key does not reveal who.

Ids and types appear in clear in Patient Journeys' events (`triggerEventId`, `eventId`), so
neither may contain patient data either.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import re
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaProducer

EVENT_TYPE = re.compile(r"[a-z0-9_.-]+")
Headers = list[tuple[str, bytes]]


def with_patient_id(data: dict[str, Any], pointer: str, patient_id: str) -> dict[str, Any]:
    """A copy of `data` with `patient_id` at the JSON pointer (`/patientId`, `/patient/id`)."""
    parts = [p.replace("~1", "/").replace("~0", "~") for p in pointer.split("/")[1:]]
    if not pointer.startswith("/") or not all(parts):
        raise ValueError(f"not a JSON pointer to a field: {pointer!r}")
    value = json.loads(json.dumps(data))
    node = value
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = patient_id
    return value


def patient_event_record(
    event_id: str,
    event_type: str,
    patient_id: str,
    data: dict[str, Any],
    *,
    occurred_at: datetime,
    source: str,
    patient_pointer: str = "/patientId",
    key_secret: str | None = None,
) -> tuple[bytes | None, Headers, bytes]:
    """(key, headers, value) of one patient event: no patient id in the key or headers."""
    if not EVENT_TYPE.fullmatch(event_type):
        raise ValueError(f"event type must match ^[a-z0-9_.-]+$, got {event_type!r}")
    if occurred_at.tzinfo is None:
        raise ValueError("occurred_at needs a timezone")
    headers = [
        ("ce_specversion", b"1.0"),
        ("ce_id", event_id.encode()),
        ("ce_type", event_type.encode()),
        ("ce_source", source.encode()),
        ("ce_time", occurred_at.isoformat().encode()),
        ("content-type", b"application/json"),
    ]
    if not isinstance(data, dict):
        raise ValueError("the event's data must be a JSON object")
    key = (
        hmac.new(key_secret.encode(), patient_id.encode(), hashlib.sha256).hexdigest().encode()
        if key_secret
        else None
    )
    value = json.dumps(with_patient_id(data, patient_pointer, patient_id)).encode()
    return key, headers, value


async def produce(args: argparse.Namespace) -> None:
    key, headers, value = patient_event_record(
        args.id, args.type, args.patient_id, json.loads(args.data),
        occurred_at=datetime.fromisoformat(args.time) if args.time else datetime.now(UTC),
        source=args.source, patient_pointer=args.patient_pointer,
        key_secret=os.environ.get("PATIENT_KEY_SECRET"),
    )  # fmt: skip
    # acks=all and idempotence: a retry after a timeout never writes the event twice.
    producer = AIOKafkaProducer(
        bootstrap_servers=os.environ["KAFKA_BOOTSTRAP_SERVERS"],
        acks="all",
        enable_idempotence=True,
    )
    await producer.start()
    try:
        sent = await producer.send_and_wait(args.topic, value, key=key, headers=headers)
    finally:
        await producer.stop()
    print(f"sent {args.type} id={args.id} to {sent.topic} {sent.partition}/{sent.offset}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--topic", required=True, help="your own topic")
    parser.add_argument("--type", required=True, help="e.g. appointment.booked")
    parser.add_argument("--id", required=True, help="your event id, stable across retries")
    parser.add_argument("--patient-id", required=True)
    parser.add_argument("--data", default="{}", help="the event's data, a JSON object")
    parser.add_argument("--time", default=None, help="when it happened (ISO 8601); default now")
    parser.add_argument("--source", default="/example/scheduling", help="your system")
    parser.add_argument("--patient-pointer", default="/patientId",
                        help="where the patient id goes in the data (JSON pointer)")  # fmt: skip
    return parser.parse_args(argv)


if __name__ == "__main__":
    asyncio.run(produce(parse_args()))
