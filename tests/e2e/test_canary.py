"""The patient-data canary: marker strings in patient contexts must never surface where
patient data does not belong: log lines, metric labels, error bodies, Kafka keys and headers,
and the audit trail.

Runs go through every route and the error paths a client can reach (401, 404, 409, 413,
422); the 500 path is covered by tests/unit/api/test_middleware.py (its body and log line),
the 503 bodies by tests/integration/api/test_outage.py. Then every log line
of the services, every service's /metrics, every error body, and every key and header
of every record on the stack's topics, and every audit record whole, is searched for the
markers.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from tests.e2e.conftest import Stack
from tests.e2e.helpers import TERMINAL, create_journey, message_journey, wait_for_status

pytestmark = pytest.mark.e2e

SERVICES = {"api", "executor", "scheduler", "projector", "delivery", "importer"}
# Each service logs a few lines at start alone (ops server, started, partitions assigned).
MIN_LINES_PER_LOG = 3
MIN_BYTES = 4096
SERVICE_FIELD = re.compile(r'"service": "([a-z]+)"')


async def test_no_patient_data_where_it_does_not_belong(
    stack: Stack, client: httpx.AsyncClient
) -> None:
    marker = f"canary{uuid.uuid4().hex}"
    context = {"id": f"{marker}-id", "name": f"{marker}-name", "phone": f"{marker}-phone",
               "age": 70, "notes": f"{marker}-notes"}  # fmt: skip
    answers: list[httpx.Response] = []

    async def call(method: str, url: str, **kwargs: object) -> httpx.Response:
        response = await client.request(method, url, **kwargs)  # type: ignore[arg-type]
        answers.append(response)
        return response

    journey = await create_journey(client, message_journey(
        "canary", {"type": "MESSAGE", "message": "Hello"},
        {"type": "DELAY", "duration_seconds": 1},
        {"type": "MESSAGE", "message": "Again"}))  # fmt: skip
    done = await call("POST", f"/journeys/{journey}/trigger", json=context)
    assert done.status_code == 202, done.text
    run_id = done.json()["runId"]
    waiting = await call("POST", f"/journeys/{journey}/trigger",
                         json={**context, "id": f"{marker}-second"})  # fmt: skip
    second = waiting.json()["runId"]
    await call("POST", f"/journeys/runs/{second}/cancel", json={"reason": f"{marker}-reason"})

    # The error paths, each with patient data in what it refuses.
    unknown = "00000000-0000-4000-8000-000000000000"
    expected = {
        401: await call("POST", f"/journeys/{journey}/trigger", json=context,
                        headers={"X-API-Key": f"{marker}-key"}),
        404: await call("POST", f"/journeys/{unknown}/trigger", json=context),
        413: await call("POST", f"/journeys/{journey}/trigger",
                        json={**context, "blob": marker * 40_000}),
    }  # fmt: skip
    invalid = [
        await call("POST", f"/journeys/{journey}/trigger", json={"name": f"{marker}-no-id"}),
        await call("POST", f"/journeys/{journey}/trigger", json={"id": {"nested": marker}}),
        await call("POST", f"/journeys/{journey}/trigger", content=f'{{"id": "{marker}',
                   headers={"content-type": "application/json"}),
        await call("GET", "/journeys/runs", params={"patientId": marker * 10}),
        await call("POST", "/journeys", json={"name": marker, "start_node_id": marker,
                                              "nodes": [{"id": marker, "type": "BOGUS"}]}),
    ]  # fmt: skip
    for status, response in expected.items():
        assert response.status_code == status, response.text
    assert [r.status_code for r in invalid] == [422] * len(invalid)

    # Reads, by patient and by run; then the ended run's 409.
    assert (await call("GET", "/journeys/runs", params={"patientId": context["id"]})).is_success
    await wait_for_status(client, run_id, TERMINAL, within=60)
    await wait_for_status(client, second, TERMINAL, within=60)
    assert (await call("GET", f"/journeys/runs/{run_id}")).is_success
    assert (await call("GET", f"/journeys/runs/{run_id}/events")).is_success
    assert (await call("POST", f"/journeys/runs/{run_id}/cancel")).status_code == 409

    # An import of the marker's rows, one of them rejected: the importer's turn.
    rows = ("event_id,clinic_id,patient_id,event_type,event_timestamp,notes\r\n"
            f"{marker}-e1,c-1,{marker}-id,APPOINTMENT_BOOKED,2025-03-01T09:00:00Z,{marker}\r\n"
            f"{marker}-e2,c-1,{marker}-id,APPOINTMENT_BOOKED,{marker},{marker}\r\n")  # fmt: skip
    imported = await call("POST", "/imports", content=rows.encode(),
                          headers={"content-type": "text/csv"})  # fmt: skip
    assert imported.status_code == 202, imported.text
    for _ in range(300):
        state = await call("GET", f"/imports/{imported.json()['importId']}")
        if state.json()["status"] == "completed":
            break
        await asyncio.sleep(0.1)
    assert (state.json()["accepted"], state.json()["rejected"]) == (1, 1), state.text
    assert marker not in state.text  # row errors name rules and columns, never a cell

    for response in answers:
        if response.status_code >= 400:
            assert marker not in response.text, (response.status_code, response.text[:200])
    events = await call("GET", f"/journeys/runs/{second}/events")
    messages = set(re.findall(r'"messageId":\s*"([^"]+)"', events.text))
    assert messages, "the cancelled run requested no message before its cancel"
    await asyncio.sleep(1)  # the services' last log lines of these requests
    scan = scan_logs(stack.log_dir, marker)
    require_scanned(scan, stack, answers, messages)
    ports = stack.ports
    async with httpx.AsyncClient(timeout=10) as plain:
        for port in (ports.api, ports.executor, ports.scheduler, ports.projector,
                     ports.delivery, ports.importer):  # fmt: skip
            metrics = await plain.get(f"http://127.0.0.1:{port}/metrics")
            assert metrics.status_code == 200
            assert marker not in metrics.text, f"patient data in the metrics of port {port}"
    seen, audited = await _kafka_keys_and_headers(stack, marker.encode())
    assert seen > 0
    assert audited >= len(answers) - 1  # all but the 413, refused before routing
    print(
        f"canary: {len(answers)} answers, {sum(scan.lines.values())} log lines in "
        f"{len(scan.lines)} files ({scan.size} bytes), {seen} Kafka records searched "
        f"({audited} audit records whole)"
    )
    # The payloads do carry it (that is where patient data lives): the canary is alive.
    assert any(context["id"] in r.text for r in answers if r.is_success)


@dataclass
class LogScan:
    """What a search of the log files read: lines per file, bytes, and the ids it met."""

    lines: dict[Path, int] = field(default_factory=dict)
    size: int = 0
    services: set[str] = field(default_factory=set)
    text: list[str] = field(default_factory=list)

    def mentions(self, token: str) -> bool:
        return any(token in line for line in self.text)


def scan_logs(log_dir: Path, marker: str) -> LogScan:
    """Every line of every log file under `log_dir`, searched for the marker."""
    scan = LogScan()
    for log in sorted(log_dir.glob("*.log")):
        raw = log.read_bytes()
        scan.size += len(raw)
        lines = raw.decode(errors="replace").splitlines()
        scan.lines[log.resolve()] = len(lines)
        for number, line in enumerate(lines, 1):
            assert marker not in line, f"{log.name}:{number}: patient data in a log line"
            if service := SERVICE_FIELD.search(line):
                scan.services.add(service.group(1))
        scan.text += lines
    return scan


def require_scanned(
    scan: LogScan, stack: Stack, answers: list[httpx.Response], messages: set[str]
) -> None:
    """A search that read nothing finds nothing: require that it read each service's own log
    file, with the line of every request this test made and of every message it sent."""
    logs = {name: s.log_path.resolve() for name, s in stack.supervisor.services.items()}
    assert set(logs) == SERVICES, f"the stack runs {sorted(logs)}"
    unread = {name: str(path) for name, path in logs.items()
              if scan.lines.get(path, 0) < MIN_LINES_PER_LOG}  # fmt: skip
    assert not unread, f"service logs not searched, or nearly empty: {unread}"
    assert scan.size >= MIN_BYTES, f"only {scan.size} bytes of logs searched"
    assert scan.services >= SERVICES, f"JSON log lines only of {sorted(scan.services)}"
    ids = [r.headers.get("x-request-id", "") for r in answers]
    unlogged = [i for i in ids if not i or not scan.mentions(f'"trace_id": "{i}"')]
    assert not unlogged, f"{len(unlogged)} of {len(ids)} requests have no API log line searched"
    unsent = [m for m in messages if not scan.mentions(m)]
    assert not unsent, f"messages with no executor log line searched: {unsent}"


async def _kafka_keys_and_headers(stack: Stack, marker: bytes) -> tuple[int, int]:
    """Every record's key and headers on the stack's topics, up to their end offsets, and the
    values of the audit topic too; returns how many records, and how many audit records."""
    names = set(stack.topics.names)
    c = AIOKafkaConsumer(*names, bootstrap_servers=stack.kafka_bootstrap,
                         auto_offset_reset="earliest", enable_auto_commit=False,
                         isolation_level="read_uncommitted")  # aborted records too  # fmt: skip
    await c.start()
    count = audited = 0
    ends: dict[TopicPartition, int] | None = None
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            batch = await c.getmany(timeout_ms=500)
            for records in batch.values():
                for r in records:
                    count += 1
                    blob = (r.key or b"") + b"".join(k.encode() + v for k, v in r.headers)
                    assert marker not in blob, f"patient data in a key or header of {r.topic}"
                    if r.topic == stack.topics.audit:
                        audited += 1
                        assert marker not in (r.value or b""), "patient data in an audit record"
            assigned = c.assignment()
            if ends is None and {tp.topic for tp in assigned} == names:
                ends = await c.end_offsets(list(assigned))
            if ends is not None and all([await c.position(tp) >= end
                                         for tp, end in ends.items()]):  # fmt: skip
                return count, audited
        raise AssertionError("the topics were not read to their end in 120 s")
    finally:
        await c.stop()
