"""The CSV import's file and row rules, on generated files: what a valid file gives back does
not depend on column order, line endings, a BOM, quoting or where the bytes are cut; every
broken rule is one row error naming its row and column; only the header can refuse a file."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from journeys_api.events_body import InboundEvent
from journeys_api.imports.events import inbound
from journeys_api.imports.rows import (
    OPTIONAL,
    REQUIRED,
    ClinicEvent,
    Duplicate,
    FileRefusedError,
    Item,
    RowError,
    read,
)

HEADER = [*REQUIRED, "treatment_type", "revenue_amount", "notes"]
T = "2025-03-03T09:30:00+01:00"


def csv_bytes(rows: list[list[str]], *, crlf: bool = False, bom: bool = False) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n" if crlf else "\n").writerows(rows)
    return (b"\xef\xbb\xbf" if bom else b"") + out.getvalue().encode()


def items(data: bytes, chunk: int = 7) -> list[Item]:
    return list(read(data[i : i + chunk] for i in range(0, len(data), chunk)))


def row(event_id: str = "e1", event_type: str = "APPOINTMENT_BOOKED", when: str = T,
        revenue: str = "", notes: str = "", **cells: str) -> list[str]:  # fmt: skip
    values = {"event_id": event_id, "clinic_id": "c1", "patient_id": "p1",
              "event_type": event_type, "event_timestamp": when, "treatment_type": "",
              "revenue_amount": revenue, "notes": notes, **cells}  # fmt: skip
    return [values[name] for name in HEADER]


# Any text but a lone carriage return, which a CSV writer ending lines with LF leaves unquoted
# (an export that does so is malformed; it is a row error, tested below).
text = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs",), exclude_characters="\r"), max_size=30
)
ids = st.text("abcdefghijklmnopqrstuvwxyz0123456789-_", min_size=1, max_size=12)
times = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1),
    timezones=st.sampled_from([UTC, timezone(timedelta(hours=-5)), timezone(timedelta(hours=9))]),
)  # fmt: skip


@st.composite
def clinic_files(draw: st.DrawFn) -> tuple[bytes, list[dict[str, Any]]]:
    extra = draw(st.lists(st.sampled_from(["room", "source_system"]), unique=True, max_size=2))
    optional = draw(st.lists(st.sampled_from(OPTIONAL), unique=True))
    columns = draw(st.permutations([*REQUIRED, *optional, *extra]))
    events = draw(st.lists(st.fixed_dictionaries({
        "event_id": ids, "patient_id": ids.map(lambda s: s.strip() or "p"), "clinic_id": ids,
        "event_type": st.sampled_from(["APPOINTMENT_CREATED", "TREATMENT_COMPLETED", "X"]),
        "occurred_at": times, "revenue": st.decimals(min_value=0, max_value=10**6, places=2),
        "notes": text, "room": text,
    }), max_size=20, unique_by=lambda e: e["event_id"]))  # fmt: skip
    rows = [list(columns)]
    for e in events:
        with_revenue = e["event_type"] == "TREATMENT_COMPLETED" and "revenue_amount" in columns
        e["revenue"] = e["revenue"] if with_revenue else None
        cells = {"event_id": e["event_id"], "clinic_id": e["clinic_id"],
                 "patient_id": e["patient_id"], "event_type": e["event_type"],
                 "event_timestamp": e["occurred_at"].isoformat(),
                 "revenue_amount": str(e["revenue"]) if e["revenue"] is not None else "",
                 "notes": e["notes"], "room": e["room"]}  # fmt: skip
        rows.append([cells.get(c, "") for c in columns])
    crlf, bom = draw(st.booleans()), draw(st.booleans())
    return csv_bytes(rows, crlf=crlf, bom=bom), events


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(clinic_files(), st.integers(1, 64))
def test_a_valid_file_gives_its_events_back_however_it_is_written_and_cut(
    file: tuple[bytes, list[dict[str, Any]]], chunk: int
) -> None:
    data, events = file
    got = items(data, chunk)
    assert all(isinstance(i, ClinicEvent) for i in got), got
    assert [(i.row, i.event_id, i.patient_id, i.occurred_at, i.revenue)
            for i in got if isinstance(i, ClinicEvent)] == [
        (n + 2, e["event_id"], e["patient_id"], e["occurred_at"], e["revenue"])
        for n, e in enumerate(events)
    ]  # fmt: skip


@given(clinic_files(), st.integers(1, 64), st.integers(1, 64))
def test_where_the_bytes_are_cut_changes_nothing(
    file: tuple[bytes, list[dict[str, Any]]], one: int, other: int
) -> None:
    assert items(file[0], one) == items(file[0], other)


def test_quoted_commas_newlines_quotes_and_extra_columns_are_kept_in_the_data() -> None:
    data = csv_bytes([[*HEADER, "room"],
                      [*row(notes='said "hi",\nthen left'), "B 12"]], crlf=True)  # fmt: skip
    (event,) = items(data)
    assert isinstance(event, ClinicEvent)
    assert event.data == {"notes": 'said "hi",\nthen left', "room": "B 12"}
    assert event.occurred_at == datetime(2025, 3, 3, 8, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("cells", "column", "reason"),
    [
        ({"event_id": ""}, "event_id", "is required and empty"),
        ({"clinic_id": "  "}, "clinic_id", "is required and empty"),
        ({"patient_id": ""}, "patient_id", "is required and empty"),
        ({"event_type": ""}, "event_type", "is required and empty"),
        ({"when": ""}, "event_timestamp", "is required and empty"),
        ({"when": "2025-03-03T09:30:00"}, "event_timestamp", "with an offset or Z"),
        ({"when": "2025-02-30T09:30:00Z"}, "event_timestamp", "with an offset or Z"),
        ({"when": "03/03/2025 09:30"}, "event_timestamp", "with an offset or Z"),
        ({"when": "2025-03-03"}, "event_timestamp", "with an offset or Z"),
        ({"revenue": "10.00"}, "revenue_amount", "only on TREATMENT_COMPLETED"),
        ({"event_type": "TREATMENT_COMPLETED", "revenue": "-1"}, "revenue_amount", "non-negative"),
        ({"event_type": "TREATMENT_COMPLETED", "revenue": "1e3"}, "revenue_amount", "decimal"),
        ({"event_type": "TREATMENT_COMPLETED", "revenue": "12,50"}, "revenue_amount", "decimal"),
        ({"event_type": "TREATMENT_COMPLETED", "revenue": "NaN"}, "revenue_amount", "decimal"),
        ({"event_id": "x" * 201}, "event_id", "longer than 200"),
        ({"patient_id": "p" * 256}, "patient_id", "longer than 255"),
        ({"event_type": "APPOINTMENT BOOKED"}, "event_type", "only letters, digits"),
    ],
)  # fmt: skip
def test_each_broken_rule_is_one_row_error_naming_the_column(
    cells: dict[str, str], column: str, reason: str
) -> None:
    data = csv_bytes([HEADER, row("ok-1"), row(**{"event_id": "bad", **cells}), row("ok-2")])
    first, bad, last = items(data)
    assert isinstance(bad, RowError)
    assert (bad.row, bad.line, bad.column) == (3, 3, column)
    assert reason in bad.reason
    assert isinstance(first, ClinicEvent)
    assert isinstance(last, ClinicEvent)
    assert last.row == 4


def test_revenue_on_a_completed_treatment_is_exact() -> None:
    data = csv_bytes([HEADER, row(event_type="TREATMENT_COMPLETED", revenue="0.10"),
                      row("e2", event_type="TREATMENT_COMPLETED", revenue="0.20")])  # fmt: skip
    assert sum(i.revenue or 0 for i in items(data) if isinstance(i, ClinicEvent)) == Decimal("0.30")


def test_a_repeated_event_id_is_reported_with_the_row_it_repeats() -> None:
    data = csv_bytes([HEADER, row("a"), row("b"), row("a"), row("a")])
    assert [type(i).__name__ for i in items(data)] == [
        "ClinicEvent", "ClinicEvent", "Duplicate", "Duplicate"
    ]  # fmt: skip
    assert items(data)[2:] == [Duplicate(4, 2, 4), Duplicate(5, 2, 5)]


def test_ragged_rows_and_bad_bytes_are_row_errors_and_reading_goes_on() -> None:
    data = (csv_bytes([HEADER, row("a")]) + b"b,c1,p1,X\n"
            + csv_bytes([row("c", notes="caf\xe9")]).replace(b"caf\xc3\xa9", b"caf\xe9")
            + csv_bytes([row("d")]))  # fmt: skip
    got = items(data)
    assert [(type(i).__name__, getattr(i, "row", None)) for i in got] == [
        ("ClinicEvent", 2), ("RowError", 3), ("RowError", 4), ("ClinicEvent", 5)
    ]  # fmt: skip
    assert got[1] == RowError(3, 3, None, "has 4 fields, the header 8")
    assert isinstance(got[1], RowError)
    assert (got[1].cells, got[1].patient_id) == (("b", "c1", "p1", "X"), "p1")
    assert "p1" not in repr(got[1])  # a row's cells never reach a log line
    assert got[2] == RowError(4, 4, "notes", "is not UTF-8")


def test_an_unclosed_quote_is_a_row_error_and_the_rows_before_it_are_kept() -> None:
    data = csv_bytes([HEADER, row("a")]) + b"b,c1,p1,X," + T.encode() + b',,,"never closed\n'
    data += csv_bytes([row("c")] * 3)
    got = items(data)
    assert isinstance(got[0], ClinicEvent)
    assert isinstance(got[-1], RowError)
    assert got[-1].row == 3
    assert "never closed" in got[-1].reason


def test_an_unclosed_quote_swallows_at_most_the_field_bound_then_reading_resumes() -> None:
    rows = [row(f"r{n}") for n in range(3000)]  # past the 64 KiB a field may have
    data = csv_bytes([HEADER, row("a")]) + b"b,c1,p1,X," + T.encode() + b',,,"open\n'
    data += csv_bytes(rows)
    got = items(data, chunk=4096)
    errors = [i for i in got if isinstance(i, RowError)]
    assert errors
    assert "unclosed quote" in errors[0].reason
    assert errors[0].row == 3
    events = [i for i in got if isinstance(i, ClinicEvent)]
    assert events[0].event_id == "a"
    assert events[-1].event_id == "r2999"  # the rows after the swallowed ones are read
    assert len(events) > 1500


def test_a_line_past_the_bound_is_a_row_error_and_memory_stays_bounded() -> None:
    huge = b"x" * 100_000

    def chunks() -> Iterator[bytes]:
        yield csv_bytes([HEADER, row("a")])
        for _ in range(100):  # 10 MB without a line end
            yield huge
        yield b"\n" + csv_bytes([row("b")])

    got = list(read(chunks()))
    assert [type(i).__name__ for i in got] == ["ClinicEvent", "RowError", "ClinicEvent"]
    assert isinstance(got[1], RowError)
    assert "longer than" in got[1].reason


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty"),
        (csv_bytes([[c for c in HEADER if c != "patient_id"], row()[:-1]]), "patient_id"),
        (b'{"event_id": "e1", "patient_id": "p1"}\n', "lacks the required column"),
        (b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 300, "not UTF-8"),
        (bytes(range(1, 10)) * 20_000, "no header row"),
        (csv_bytes([[*HEADER, "notes"], row()]), "repeats the column(s) notes"),
        (b"event_id,clinic_id,patient_id,event_type,event_timestamp,\n", "without a name"),
    ],
)
def test_only_the_header_refuses_the_whole_file(data: bytes, reason: str) -> None:
    with pytest.raises(FileRefusedError, match=reason.replace("(", r"\(").replace(")", r"\)")):
        items(data)


def test_an_accepted_row_is_the_patient_event_it_names() -> None:
    data = csv_bytes(
        [[*HEADER, "room"], [*row("e9", event_type="TREATMENT_COMPLETED", revenue="80.00"), "B 12"]]
    )
    (event,) = items(data)
    assert isinstance(event, ClinicEvent)
    assert inbound(event) == InboundEvent(
        event_id="e9", patient_id="p1", type="treatment_completed",
        occurred_at=datetime(2025, 3, 3, 8, 30, tzinfo=UTC),
        data={"clinic_id": "c1", "revenue_amount": "80.00", "room": "B 12"},
    )  # fmt: skip
