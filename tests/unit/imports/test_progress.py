"""An import's figures: exact revenue, ISO weeks in UTC whatever the offsets, and chat
messages of figures only."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from journeys_api.imports.progress import Tally, finished, progressed, started, week_of
from journeys_api.imports.rows import ClinicEvent, Duplicate, RowError

IMPORT = uuid.UUID("5b0e9a52-2f6c-4c1e-9a57-3d1f0e2b4c6d")


def event(n: int, when: datetime, revenue: str | None = None) -> ClinicEvent:
    return ClinicEvent(
        row=n, event_id=f"e{n}", clinic_id="c1", patient_id=f"secret-patient-{n}",
        event_type="TREATMENT_COMPLETED" if revenue else "APPOINTMENT_BOOKED", occurred_at=when,
        revenue=Decimal(revenue) if revenue else None, treatment_type=None,
        data={"notes": "private note"},
    )  # fmt: skip


@given(st.datetimes(timezones=st.sampled_from(
    [UTC, timezone(timedelta(hours=14)), timezone(timedelta(hours=-12))])))  # fmt: skip
def test_a_week_is_the_iso_week_in_utc_whatever_the_offset(moment: datetime) -> None:
    monday = week_of(moment)
    assert monday.weekday() == 0
    utc_day = moment.astimezone(UTC).date()
    assert monday <= utc_day < monday + timedelta(days=7)
    assert monday.isocalendar()[:2] == utc_day.isocalendar()[:2]


def test_sunday_late_in_new_york_is_monday_in_utc() -> None:
    sunday_night = datetime(2025, 3, 9, 22, 0, tzinfo=timezone(timedelta(hours=-4)))
    assert week_of(sunday_night) == date(2025, 3, 10)


def test_the_tally_counts_each_kind_and_sums_revenue_exactly() -> None:
    tally = Tally()
    monday = datetime(2025, 3, 3, 9, tzinfo=UTC)
    for item in [
        event(2, monday, "0.10"),
        event(3, monday + timedelta(days=6), "0.20"),
        event(4, monday + timedelta(days=7), "5"),
        event(5, monday),
        RowError(6, 6, "event_id", "is required and empty"),
        Duplicate(7, 2),
    ]:
        tally.add(item)
    assert (tally.rows, tally.accepted, tally.rejected, tally.duplicates) == (6, 4, 1, 1)
    assert tally.revenue == Decimal("5.30")
    assert tally.top_weeks() == [
        (date(2025, 3, 10), Decimal(5)),
        (date(2025, 3, 3), Decimal("0.30")),
    ]


def test_messages_carry_figures_and_never_a_cell_of_the_file() -> None:
    tally = Tally()
    tally.add(event(2, datetime(2025, 3, 3, tzinfo=UTC), "1234.5"))
    for n in range(3, 12):
        tally.add(event(n, datetime(2025, 3, 4, tzinfo=UTC)))
    messages = [started(IMPORT, "march.csv"), progressed(IMPORT, tally, 2.0),
                finished(IMPORT, tally, 4.0, "completed")]  # fmt: skip
    for message in messages:
        assert set(message) == {"text", "blocks"}
        assert all(block["type"] == "section" for block in message["blocks"])
        dumped = json.dumps(message)
        assert "secret-patient" not in dumped
        assert "private note" not in dumped
    assert "1,234.50" in messages[1]["text"]
    assert "10 rows read" in messages[1]["text"]
    assert "5 rows/s" in messages[1]["text"]
    assert "week of 2025-03-03: 1,234.50" in json.dumps(messages[2])
    failed = finished(IMPORT, tally, 1.0, "failed", "the upload was cut short at line 80,001")
    assert failed["text"].startswith(f"Import {IMPORT} failed in 1.0 s: the upload was cut short")
