"""The example producer other teams copy writes the record we document: CloudEvents binary mode,
the patient id only inside the value, where the ingest mapping's JSON pointer finds it."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import importlib.util
import json
import os
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

SCRIPT = Path(__file__).parents[2] / "contracts" / "examples" / "produce_patient_events.py"
NOW = datetime(2025, 3, 14, 9, 26, 53, tzinfo=UTC)
PATIENT = "patient-secret-42"


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("produce_patient_events", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def pointed(value: object, pointer: str) -> object:
    """RFC 6901, as the ingest mapping reads the patient id."""
    for part in pointer.split("/")[1:]:
        assert isinstance(value, dict)
        value = value[part.replace("~1", "/").replace("~0", "~")]
    return value


def test_the_patient_id_is_in_the_value_only() -> None:
    key, headers, value = load_example().patient_event_record(
        "ehr-7781", "appointment.booked", PATIENT, {"appointmentId": "a-9"},
        occurred_at=NOW, source="/scheduling", key_secret="their-secret",
    )  # fmt: skip

    assert dict(headers) == {
        "ce_specversion": b"1.0", "ce_id": b"ehr-7781", "ce_type": b"appointment.booked",
        "ce_source": b"/scheduling", "ce_time": NOW.isoformat().encode(),
        "content-type": b"application/json",
    }  # fmt: skip
    assert json.loads(value) == {"appointmentId": "a-9", "patientId": PATIENT}
    assert key == hmac.new(b"their-secret", PATIENT.encode(), hashlib.sha256).hexdigest().encode()
    assert PATIENT.encode() not in key + b"".join(v for _, v in headers)


def test_no_secret_no_key() -> None:
    key, _, _ = load_example().patient_event_record(
        "e-1", "form.submitted", PATIENT, {}, occurred_at=NOW, source="/forms"
    )
    assert key is None


@pytest.mark.parametrize("pointer", ["/patientId", "/patient/id", "/a~1b"])
def test_the_patient_id_goes_where_the_pointer_says(pointer: str) -> None:
    _, _, value = load_example().patient_event_record(
        "e-1", "form.submitted", PATIENT, {"patient": {"name": "kept"}}, occurred_at=NOW,
        source="/forms", patient_pointer=pointer,
    )  # fmt: skip
    assert pointed(json.loads(value), pointer) == PATIENT


@pytest.mark.parametrize(
    ("event_type", "occurred_at", "pointer", "match"),
    [("Appointment.Booked", NOW, "/patientId", "event type"),
     ("appointment booked", NOW, "/patientId", "event type"),
     ("a.b", datetime(2025, 3, 14), "/patientId", "timezone"),
     ("a.b", NOW, "patientId", "JSON pointer"), ("a.b", NOW, "/", "JSON pointer")],
)  # fmt: skip
def test_refuses_what_the_ingest_would_refuse(
    event_type: str, occurred_at: datetime, pointer: str, match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        load_example().patient_event_record(
            "e-1", event_type, PATIENT, {}, occurred_at=occurred_at, source="/x",
            patient_pointer=pointer,
        )  # fmt: skip


async def test_publishes_one_record_to_the_teams_own_topic(kafka_bootstrap: str) -> None:
    topic = f"t{uuid.uuid4().hex[:10]}.scheduling.patient-events.v1"
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 1, 1)])
    finally:
        await admin.close()
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(SCRIPT), "--topic", topic, "--type", "appointment.booked",
        "--id", "ehr-7781", "--patient-id", PATIENT, "--data", '{"clinicId": "c-1"}',
        "--time", NOW.isoformat(),
        env={**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
             "PATIENT_KEY_SECRET": "their-secret"},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0, stderr.decode()
    assert stdout.decode() == f"sent appointment.booked id=ehr-7781 to {topic} 0/0\n"

    consumer = AIOKafkaConsumer(topic, bootstrap_servers=kafka_bootstrap,
                                auto_offset_reset="earliest")  # fmt: skip
    await consumer.start()
    try:
        record = await asyncio.wait_for(consumer.getone(), timeout=30)
    finally:
        await consumer.stop()

    headers = {name: value.decode() for name, value in record.headers}
    assert (headers["ce_id"], headers["ce_type"]) == ("ehr-7781", "appointment.booked")
    assert datetime.fromisoformat(headers["ce_time"]) == NOW
    assert "ce_subject" not in headers
    assert pointed(json.loads(record.value or b""), "/patientId") == PATIENT
    assert PATIENT not in json.dumps(headers) + (record.key or b"").decode()
