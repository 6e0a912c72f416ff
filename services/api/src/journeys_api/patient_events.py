"""Patient events to commands: the one path every way in (`POST /events`, signed webhooks,
other teams' topics) sends its events by.

Each event becomes one `RecordPatientEvent` command on the commands topic, keyed by its
patient's key, in order with the patient's runs; sealed (`RecordPatientEventSealed`) when
patient data is sealed. Its id is `receipt_id(patient_key, event_id)` whichever way it came,
so the executor has the same event take effect once across all of them. `source` says which
way (`api`, `hook:<source>`, `topic:<topic>`) and is never patient data.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Protocol

import orjson

from journeys_api import deadline
from journeys_api.data_keys import HeldKey, PatientDataKeys
from journeys_api.errors import TooLargeError
from journeys_api.events_body import InboundEvent
from journeys_api.publisher import SOURCE as PUBLISHER_SOURCE
from journeys_api.publisher import Message, Publisher
from journeys_contracts.commands import (
    ClinicFacts,
    RecordPatientEvent,
    RecordPatientEventSealed,
    receipt_id,
    receipt_text,
)
from journeys_contracts.definition import EVENT_TYPE_PATTERN
from journeys_contracts.envelope import CONTENT_TYPE, SPEC_VERSION
from journeys_contracts.sealed import SealedValue, WrappedDataKey
from journeys_runtime.sealing import seal_value, to_wire
from journeys_runtime.shredding import ShreddingError, seal
from journeys_runtime.topics import Topics


class SinkSettings(Protocol):
    @property
    def patient_data_sealing(self) -> bool: ...

    @property
    def produce_timeout_seconds(self) -> float: ...


class Sink(Protocol):
    """What sending needs: the API's `Resources`, or the ingest's own clients."""

    @property
    def settings(self) -> SinkSettings: ...

    @property
    def publisher(self) -> Publisher: ...

    @property
    def topics(self) -> Topics: ...

    @property
    def data_keys(self) -> PatientDataKeys: ...

    def patient_key(self, patient_id: str) -> str: ...


@dataclass(frozen=True)
class Accepted:
    """An event to send, with its index among those received (for a 413) and its patient's
    key."""

    index: int
    event: InboundEvent
    patient_key: str


def unique(events: Iterable[InboundEvent], patient_key: Callable[[str], str]) -> list[Accepted]:
    """The first of each (patient, event id) among `events`: a repeat in one request or batch
    is sent once."""
    keys: dict[str, str] = {}
    found: dict[tuple[str, str], Accepted] = {}
    for index, event in enumerate(events):
        key = keys.get(event.patient_id)
        if key is None:
            key = keys[event.patient_id] = patient_key(event.patient_id)
        found.setdefault((key, event.event_id), Accepted(index, event, key))
    return list(found.values())


async def publish(sink: Sink, accepted: list[Accepted], received_at: datetime, source: str) -> None:
    """Every command produced before any acknowledgement is awaited; returns once Kafka has
    them all. Sealed: while every patient's data key is held, as a trigger holds its
    patient's, so no erasure of these patients comes between their key and their events on
    the partition. `TooLargeError` names the first event that cannot fit a record."""
    send = sink.publisher.send_many
    topic = sink.topics.commands
    max_wait = deadline.allowed(sink.settings.produce_timeout_seconds)
    if not sink.settings.patient_data_sealing:
        await send(topic, messages(sink.publisher, accepted, received_at, source, None),
                   max_wait=max_wait)  # fmt: skip
        return
    async with sink.data_keys.held_many(a.patient_key for a in accepted) as held:
        records = messages(sink.publisher, accepted, received_at, source, held)
        await send(topic, records, max_wait=max_wait)


def messages(
    publisher: Publisher, accepted: list[Accepted], received_at: datetime, source: str,
    held: Mapping[str, HeldKey] | None,
) -> list[Message]:  # fmt: skip
    """The commands as Kafka records; 413 naming the event when one cannot fit a record.

    Sealed commands are written by `_SealedRecords`, straight to their JSON; any event it does
    not take (see there) goes through the command model, which validates it and raises as
    before."""
    found = []
    patients: dict[str, _SealedPatient] = {}
    fast = _SealedRecords(received_at, source) if held is not None else None
    for item in accepted:
        message = None if fast is None or held is None else fast.message(
            item, held[item.patient_key]
        )  # fmt: skip
        try:
            if message is None:
                receipt = str(receipt_id(item.patient_key, item.event.event_id))
                fields = _fields(item, receipt, received_at, source)
                record = (
                    _command(item, fields) if held is None
                    else _sealed(item, fields, held[item.patient_key], patients)
                )  # fmt: skip
                message = publisher.prepare(
                    item.patient_key, record, subject=receipt, event_id=receipt
                )
            else:
                publisher.check_size(_SEALED_TYPE, message)
        except TooLargeError as exc:
            raise TooLargeError(f"event {item.index}: {exc.detail}") from exc
        found.append(message)
    return found


def _fields(item: Accepted, receipt: str, received_at: datetime, source: str) -> dict[str, Any]:
    event = item.event
    return {
        "receipt_id": receipt, "event_id": event.event_id, "patient_key": item.patient_key,
        "event_type": event.type, "occurred_at": event.occurred_at or received_at,
        "received_at": received_at, "source": source, "clinic": clinic_facts(event.data),
    }  # fmt: skip


_DECIMAL = re.compile(r"^\d{1,13}(\.\d{1,6})?$")


def clinic_facts(data: dict[str, Any]) -> ClinicFacts | None:
    """The figures a clinic's weekly analytics count, when the data names a clinic
    (`clinic_id` or `clinicId`, a non-blank string of at most 200 characters): a revenue only
    when it is a non-negative decimal (text or number), a treatment type only when text."""
    wire = _clinic_wire(data)
    return None if wire is None else ClinicFacts.model_validate(wire)


def _clinic_wire(data: dict[str, Any]) -> dict[str, str] | None:
    """`clinic_facts` as its JSON: only the fields it has."""
    clinic = _either(data, "clinic_id", "clinicId")
    if not isinstance(clinic, str) or not clinic.strip() or len(clinic) > 200:
        return None
    wire = {"clinicId": clinic.strip()}
    revenue = _either(data, "revenue_amount", "revenueAmount")
    if isinstance(revenue, int | float) and not isinstance(revenue, bool):
        revenue = format(Decimal(str(revenue)), "f")
    if isinstance(revenue, str) and _DECIMAL.match(revenue.strip()):
        wire["revenueAmount"] = revenue.strip()
    treatment = _either(data, "treatment_type", "treatmentType")
    kind = treatment.strip()[:200] if isinstance(treatment, str) else ""
    if kind:
        wire["treatmentType"] = kind
    return wire


def _either(data: dict[str, Any], snake: str, camel: str) -> Any:
    return data.get(snake, data.get(camel))


def _command(item: Accepted, fields: dict[str, Any]) -> RecordPatientEvent:
    return RecordPatientEvent(
        **fields, patient_id=item.event.patient_id, event_data=item.event.data
    )


@dataclass(frozen=True)
class _SealedPatient:
    """What every sealed event of one patient in the request carries alike, made once."""

    patient_id: SealedValue
    data_key: WrappedDataKey


def _sealed(
    item: Accepted, fields: dict[str, Any], held: HeldKey, patients: dict[str, _SealedPatient]
) -> RecordPatientEventSealed:
    """The patient id and the event's data sealed under the patient's key, each bound to its
    field's wire name, as `journeys_runtime.sealing.seal_fields` seals them; the patient's
    sealed id and wrapped key once per patient and request (`patients`)."""
    patient = patients.get(item.patient_key)
    if patient is None:
        sealed_id = seal_value(held.key, item.patient_key, "patientId", item.event.patient_id)
        patient = patients[item.patient_key] = _SealedPatient(sealed_id, to_wire(held.wrapped))
    return RecordPatientEventSealed(
        **fields,
        patient_id=patient.patient_id,
        event_data=seal_value(held.key, item.patient_key, "eventData", item.event.data),
        data_key=patient.data_key,
    )  # fmt: skip


_SEALED_TYPE: str = RecordPatientEventSealed.model_fields["type"].default
_SOURCE_MAX = 300
_EVENT_ID_MAX = 200


class _SealedRecords:
    """`RecordPatientEventSealed` records written straight to their JSON: the same fields,
    order and text as the model writes them (tests/unit/api/test_sealed_records.py holds them
    to it), at a fraction of the cost. Building and validating the model, then dumping it,
    was most of an import's time: thousands of events a second, each one a model.

    `message` answers None for an event it does not take, for the model to build (and refuse,
    if it must): one whose fields would break the command's rules (checked here, cheaply, as
    the model would: lengths, the type's pattern, a time zone) or that orjson cannot write."""

    def __init__(self, received_at: datetime, source: str) -> None:
        self.received = _utc_text(received_at) if received_at.tzinfo is not None else None
        self.received_at = received_at
        self.source = source if 0 < len(source) <= _SOURCE_MAX else None
        # One CloudEvents time for the batch: when its records were made.
        self.ce_time = datetime.now(UTC).isoformat().encode()
        self.patients: dict[str, tuple[dict[str, str], dict[str, str]]] = {}

    def message(self, item: Accepted, held: HeldKey) -> Message | None:
        event = item.event
        if self.received is None or self.source is None:
            return None
        if not (0 < len(event.event_id) <= _EVENT_ID_MAX and len(event.type) <= 200
                and _EVENT_TYPE.fullmatch(event.type)):  # fmt: skip
            return None
        occurred = event.occurred_at or self.received_at
        if occurred.tzinfo is None:
            return None
        key = item.patient_key
        try:
            patient = self.patients.get(key)
            if patient is None:
                patient = self.patients[key] = (
                    seal(held.key, key, "patientId", event.patient_id),
                    {"kid": held.wrapped.kid, "kek": held.wrapped.kek_id,
                     "wrapped": base64.b64encode(held.wrapped.wrapped).decode()},
                )  # fmt: skip
            receipt = receipt_text(key, event.event_id)
            record: dict[str, Any] = {
                "type": _SEALED_TYPE, "receiptId": receipt, "eventId": event.event_id,
                "patientKey": key, "patientId": patient[0], "eventType": event.type,
                "occurredAt": _utc_text(occurred), "receivedAt": self.received,
                "source": self.source, "eventData": seal(held.key, key, "eventData", event.data),
                "dataKey": patient[1],
            }  # fmt: skip
            clinic = _clinic_wire(event.data)
            if clinic is not None:
                record["clinic"] = clinic
            value = orjson.dumps(record)
        except (orjson.JSONEncodeError, ShreddingError, TypeError, ValueError, OverflowError):
            return None
        headers = [
            _SPEC_VERSION_HEADER, ("ce_id", receipt.encode()), _CE_TYPE_HEADER,
            _CE_SOURCE_HEADER, ("ce_subject", receipt.encode()), ("ce_time", self.ce_time),
            _CONTENT_TYPE_HEADER,
        ]  # fmt: skip
        return {"value": value, "key": key.encode(), "headers": headers}


_EVENT_TYPE = re.compile(EVENT_TYPE_PATTERN)
_SPEC_VERSION_HEADER = ("ce_specversion", SPEC_VERSION.encode())
_CONTENT_TYPE_HEADER = ("content-type", CONTENT_TYPE.encode())
_CE_TYPE_HEADER = ("ce_type", _SEALED_TYPE.encode())
_CE_SOURCE_HEADER = ("ce_source", PUBLISHER_SOURCE.encode())


def _utc_text(at: datetime) -> str:
    """A zone-aware time as the command models write it: in UTC, `Z`, microseconds if any."""
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")
