"""End to end over HTTP: a clinic's CSV uploaded to the running API is imported by its
importer, and the imported events start the journeys they trigger, once, even when the same
file is uploaded again."""

from __future__ import annotations

import asyncio
import csv
import os
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Stack
from tests.e2e.helpers import create_journey, wait_for_status

pytestmark = pytest.mark.e2e


async def _ended(client: httpx.AsyncClient, import_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        body = (await client.get(f"/imports/{import_id}")).json()
        if body["status"] in ("completed", "failed"):
            return body
        await asyncio.sleep(0.2)
    raise AssertionError(f"import {import_id} did not end: {body}")


async def _runs(client: httpx.AsyncClient, patient_id: str) -> list[dict[str, Any]]:
    response = await client.post("/journeys/runs/search", json={"patientId": patient_id})
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


async def _runs_once_started(client: httpx.AsyncClient, patient_id: str) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        runs = await _runs(client, patient_id)
        if runs:
            return runs
        await asyncio.sleep(0.2)
    raise AssertionError(f"no run of {patient_id}")


async def test_an_imported_booking_starts_its_journey_once(
    stack: Stack, client: httpx.AsyncClient
) -> None:
    clinic = f"clinic-{uuid.uuid4().hex[:8]}"
    journey_id = await create_journey(client, {
        "name": "Booked", "start_node_id": "hello",
        "triggers": [{"event": "appointment_booked",
                      "when": {"field": "event.data.clinic_id", "operator": "==",
                               "value": clinic}}],
        "nodes": [{"id": "hello", "type": "MESSAGE", "message": "See you soon.",
                   "next_node_id": None}],
    })  # fmt: skip
    patient = f"patient-{uuid.uuid4().hex[:8]}"
    csv = (
        "event_timestamp,event_id,clinic_id,patient_id,event_type,notes\r\n"
        f'2025-03-03T09:00:00Z,{clinic}-1,{clinic},{patient},APPOINTMENT_BOOKED,"ground, floor"\r\n'
        f"2025-03-03T09:05:00Z,{clinic}-2,{clinic},,APPOINTMENT_BOOKED,\r\n"
    ).encode()
    headers = {"content-type": "text/csv"}
    first = await client.post("/imports", content=csv, headers=headers)
    assert first.status_code == 202, first.text
    done = await _ended(client, first.json()["importId"])
    assert (done["status"], done["accepted"], done["rejected"]) == ("completed", 1, 1)
    assert done["errors"] == [{"row": 3, "line": 3, "column": "patient_id",
                               "reason": "is required and empty"}]  # fmt: skip

    runs = await _runs_once_started(client, patient)
    assert [r["journeyId"] for r in runs] == [journey_id]
    await wait_for_status(client, runs[0]["runId"], {"completed"})

    again = await client.post("/imports", content=csv, headers=headers)
    assert again.json()["importId"] == first.json()["importId"]
    await asyncio.sleep(1)
    assert len(await _runs(client, patient)) == 1


def _cli(stack: Stack, path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "journeys_api", "import", str(path), "--url", stack.api_url],
        env={**os.environ, "JOURNEYS_API_KEY": stack.api_key, "COLUMNS": "200"},
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


async def test_the_command_line_uploads_follows_and_says_how_it_ended(
    stack: Stack, tmp_path: Path
) -> None:
    good = tmp_path / "week.csv"
    rows = [f"e-{uuid.uuid4().hex[:8]}-{i},c-9,p-{i % 7},TREATMENT_COMPLETED,"
            f"2025-03-0{1 + i % 7}T10:00:00-05:00,{i}.50" for i in range(300)]  # fmt: skip
    rows[10] = rows[10].replace("TREATMENT_COMPLETED", "APPOINTMENT_BOOKED")  # revenue: refused
    good.write_text("event_id,clinic_id,patient_id,event_type,event_timestamp,revenue_amount\n"
                    + "\n".join(rows) + "\n")  # fmt: skip
    done = await asyncio.to_thread(_cli, stack, good)
    assert done.returncode == 0, done.stderr
    revenue = sum(i + 0.5 for i in range(300)) - 10.5
    assert f"299 rows imported, 1 rejected, 0 duplicates, revenue {revenue:.2f}" in done.stderr
    assert "GET /imports/" in done.stderr

    bad = tmp_path / "export.json"
    bad.write_text('{"not": "csv"}\n')
    refused = await asyncio.to_thread(_cli, stack, bad)
    assert refused.returncode == 2
    assert "refused (422)" in refused.stderr
    assert "lacks the required column" in refused.stderr


SAMPLE = Path(__file__).resolve().parents[2] / "examples" / "clinic_events.csv"


def _expected_weeks(path: Path) -> dict[tuple[str, str], dict[str, Any]]:
    """The sample's weekly figures, computed here from the file by the rules, apart from the
    API: its valid rows, each event id once, by ISO week (UTC) and clinic."""
    weeks: dict[tuple[str, str], dict[str, Any]] = {}
    seen: set[str] = set()
    with path.open(newline="") as f:
        for row in csv.DictReader(f):
            when = row["event_timestamp"]
            if "T" not in when or row["event_id"] in seen:
                continue  # the row with a date without a time zone; a repeated event id
            if row["revenue_amount"] and row["event_type"] != "TREATMENT_COMPLETED":
                continue  # revenue on an appointment: refused
            seen.add(row["event_id"])
            day = datetime.fromisoformat(when).astimezone(UTC).date()
            monday = (day - timedelta(days=day.weekday())).isoformat()
            week = weeks.setdefault((monday, row["clinic_id"]), {
                "revenue": Decimal(0), "byType": {}, "treatments": 0, "appointments": 0,
                "bookings": 0, "events": 0})  # fmt: skip
            week["events"] += 1
            kind = row["event_type"]
            week["treatments"] += kind == "TREATMENT_COMPLETED"
            week["appointments"] += "APPOINTMENT" in kind
            week["bookings"] += "BOOKED" in kind or "BOOKING" in kind
            if row["revenue_amount"]:
                amount = Decimal(row["revenue_amount"])
                week["revenue"] += amount
                by_type = week["byType"]
                by_type[row["treatment_type"]] = by_type.get(row["treatment_type"], 0) + amount
    return weeks


async def test_the_sample_files_weekly_figures_are_the_files(
    stack: Stack, client: httpx.AsyncClient
) -> None:
    answer = await client.post("/imports", content=SAMPLE.read_bytes(),
                               headers={"content-type": "text/csv"})  # fmt: skip
    done = await _ended(client, answer.json()["importId"])
    assert (done["accepted"], done["rejected"], done["duplicates"]) == (40, 2, 1)

    expected = _expected_weeks(SAMPLE)
    deadline = time.monotonic() + 30
    got: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        march = {"from": "2025-03-01", "to": "2025-03-31"}
        got = (await client.get("/analytics/weekly", params=march)).json()["weeks"]
        got = [w for w in got if w["clinicId"] in ("north", "south")]
        if sum(w["events"] for w in got) == 40:
            break
        await asyncio.sleep(0.2)
    assert {(w["week"], w["clinicId"]): {
        "revenue": Decimal(w["revenue"]),
        "byType": {k: Decimal(v) for k, v in w["revenueByTreatmentType"].items()},
        "treatments": w["treatmentsCompleted"], "appointments": w["appointments"],
        "bookings": w["bookings"], "events": w["events"]} for w in got} == expected  # fmt: skip


async def test_an_event_posted_counts_and_the_zone_chooses_its_week(
    client: httpx.AsyncClient,
) -> None:
    clinic = f"east-{uuid.uuid4().hex[:8]}"
    data = {"clinicId": clinic, "revenueAmount": 10.5, "treatmentType": "cleaning"}
    event = {"eventId": f"visit-{clinic}", "patientId": "p-east", "type": "treatment_completed",
             "occurredAt": "2025-03-09T22:30:00-04:00",  # Sunday evening in New York (EDT)
             "data": data}  # fmt: skip
    assert (await client.post("/events", json=event)).status_code == 202
    assert (await client.post("/events", json=event)).status_code == 202  # counted once

    async def weeks(tz: str) -> list[tuple[str, str, int]]:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            body = (await client.get("/analytics/weekly",
                                     params={"clinicId": clinic, "tz": tz})).json()  # fmt: skip
            if body["weeks"]:
                return [(w["week"], w["revenue"], w["events"]) for w in body["weeks"]]
            await asyncio.sleep(0.2)
        raise AssertionError(f"no figures for {clinic}")

    assert await weeks("UTC") == [("2025-03-10", "10.5", 1)]  # Monday 02:30 in UTC
    assert await weeks("America/New_York") == [("2025-03-03", "10.5", 1)]
    bad = await client.get("/analytics/weekly", params={"tz": "Mars/Olympus"})
    assert bad.status_code == 422
    assert bad.json()["detail"][0]["loc"] == ["query", "tz"]
