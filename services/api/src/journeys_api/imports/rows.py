"""A clinic's CSV export, read as a stream: each row a clinic event or the reason it is not.

Pure: bytes in, items out, nothing stored or sent. The file may be any size; what is kept
across rows is the header and the event ids seen (a repeat is reported, not applied twice).

The whole file is refused (`FileRefusedError`) only for what its first bytes show: no header
row within `MAX_HEADER_BYTES`, a header that is not UTF-8 or lacks a required column (which is
also what a file that is not CSV at all looks like). Anything later is a row error with its
row number, column and reason, and reading goes on: a field that is not UTF-8, a ragged row,
an unclosed quote (strict quoting: it ends the file, or a field past `MAX_FIELD_CHARS`, as a
row error, and reading resumes on the next line).

Row numbers count records as a spreadsheet shows them: the header is row 1, the first data
row row 2 (a quoted field with newlines keeps its record one row). `line` is the file's line
where the row ends, for an editor.
"""

from __future__ import annotations

import _csv
import codecs
import csv
import re
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation

from journeys_api.bodies import MAX_PATIENT_ID_LENGTH

REQUIRED = ("event_id", "clinic_id", "patient_id", "event_type", "event_timestamp")
OPTIONAL = (
    "appointment_id", "treatment_id", "channel", "treatment_type",
    "appointment_status_snapshot", "revenue_amount", "doctor_id", "notes",
)  # fmt: skip
ERROR_COLUMN = "import_error"
"""The column the errors file adds to each rejected row (what to fix); a file uploaded again
with it is read without it: it never becomes event data."""
REVENUE_TYPE = "TREATMENT_COMPLETED"
"""The only event type that may carry `revenue_amount`."""
MAX_HEADER_BYTES = 64 * 1024
MAX_FIELD_CHARS = 64 * 1024
MAX_LINE_BYTES = 4 * MAX_FIELD_CHARS
MAX_REVENUE = Decimal("1e12")
MAX_ID_CHARS = 200

# ISO 8601 date and time with an offset or Z: 2025-03-01T09:30:00Z, 2025-03-01 09:30:00.5+01:00
_TIMESTAMP = re.compile(
    r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|z|[+-]\d{2}:?\d{2})$"
)
_DECIMAL = re.compile(r"^\d+(\.\d+)?$")
_EVENT_TYPE = re.compile(r"^[A-Za-z0-9_.-]+$")
_SURROGATES = re.compile("[\udc80-\udcff]")


class FileRefusedError(ValueError):
    """The file as a whole is not an import: nothing of it may be taken."""


@dataclass(frozen=True)
class ClinicEvent:
    """A row that passed every rule. `data` holds every column but the ids and the timestamp,
    empty optional ones left out, extra ones kept."""

    row: int
    event_id: str
    clinic_id: str
    patient_id: str
    event_type: str
    occurred_at: datetime
    revenue: Decimal | None
    treatment_type: str | None
    data: dict[str, str]
    line: int = 0
    """The file's line where the row ends."""


@dataclass(frozen=True)
class RowError:
    """Row `row` is not imported: `column` (None: the row as a whole) and why. The reason
    names rules and columns, never a value: a cell may hold patient data. `cells` are the
    row's fields as read (None when the row could not be read as CSV) and `patient_id` its
    patient id cell, for the file of rejected rows the clinic fixes and uploads again; never
    in a log line or an error body."""

    row: int
    line: int
    column: str | None
    reason: str
    cells: tuple[str, ...] | None = field(default=None, repr=False, compare=False)
    patient_id: str | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class Duplicate:
    """Row `row` (ending on line `line`) repeats the event id of row `first`: reported, not
    applied twice."""

    row: int
    first: int
    line: int = 0


Item = ClinicEvent | RowError | Duplicate


@dataclass
class Header:
    columns: tuple[str, ...]
    index: dict[str, int] = field(init=False)

    def __post_init__(self) -> None:
        self.index = {name: i for i, name in enumerate(self.columns)}

    @classmethod
    def of(cls, fields: list[str]) -> Header:
        """The header row, names trimmed; refused when a required column is missing or a
        name is blank or repeated (which column would a cell belong to?)."""
        names = tuple(name.strip() for name in fields)
        missing = [name for name in REQUIRED if name not in names]
        if missing:
            raise FileRefusedError(
                f"the header lacks the required column(s) {', '.join(missing)}; it must have "
                f"{', '.join(REQUIRED)} (is this a CSV export of clinic events?)"
            )
        if any(not name for name in names):
            raise FileRefusedError("the header has a column without a name")
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise FileRefusedError(f"the header repeats the column(s) {', '.join(repeated)}")
        return cls(names)


def check_row(header: Header, row: int, line: int, fields: list[str]) -> ClinicEvent | RowError:
    """One data row against the row rules; the first broken rule is the error."""

    def error(column: str | None, reason: str) -> RowError:
        at = header.index["patient_id"]
        patient_id = fields[at].strip() if at < len(fields) else ""
        return RowError(row, line, column, reason, tuple(fields), patient_id or None)

    if len(fields) != len(header.columns):
        return error(None, f"has {len(fields)} fields, the header {len(header.columns)}")
    cells = dict(zip(header.columns, fields, strict=True))
    if _SURROGATES.search("".join(fields)):  # once for the row; then which cell
        for name, value in cells.items():
            if _SURROGATES.search(value):
                return error(name, "is not UTF-8")
    values = {name: cells[name].strip() for name in REQUIRED}
    for name in REQUIRED:
        if not values[name]:
            return error(name, "is required and empty")
    for name, most in (("event_id", MAX_ID_CHARS), ("patient_id", MAX_PATIENT_ID_LENGTH),
                       ("clinic_id", MAX_ID_CHARS), ("event_type", MAX_ID_CHARS)):  # fmt: skip
        if len(values[name]) > most:
            return error(name, f"is longer than {most} characters")
    if not _EVENT_TYPE.match(values["event_type"]):
        return error("event_type", "may hold only letters, digits, _ . and -")
    occurred_at = _timestamp(values["event_timestamp"])
    if occurred_at is None:
        return error("event_timestamp", "must be an ISO 8601 date and time with an offset or Z")
    revenue = None
    amount = cells.get("revenue_amount", "").strip()
    if amount:
        if values["event_type"] != REVENUE_TYPE:
            return error("revenue_amount", f"is allowed only on {REVENUE_TYPE}")
        revenue = _amount(amount)
        if revenue is None:
            return error("revenue_amount", "must be a non-negative decimal (like 120.50)")
    data = {name: value for name, value in cells.items()
            if name not in REQUIRED and name != ERROR_COLUMN and value.strip()}  # fmt: skip
    return ClinicEvent(
        row=row, event_id=values["event_id"], clinic_id=values["clinic_id"],
        patient_id=values["patient_id"], event_type=values["event_type"],
        occurred_at=occurred_at, revenue=revenue,
        treatment_type=cells.get("treatment_type", "").strip() or None, data=data, line=line,
    )  # fmt: skip


def _timestamp(text: str) -> datetime | None:
    if not _TIMESTAMP.match(text):
        return None
    try:
        parsed = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:  # 2025-02-30, 25:00, ...
        return None
    return parsed if parsed.utcoffset() is not None else None


def _amount(text: str) -> Decimal | None:
    if not _DECIMAL.match(text):
        return None
    try:
        value = Decimal(text)
    except InvalidOperation:
        return None
    return value if value < MAX_REVENUE else None


class LineTooLongError(csv.Error):
    """A line longer than the bound: skipped to its end, a row error."""


class _Lines:
    """The file's lines, each with its ending, decoded as UTF-8 (a BOM dropped); bytes that
    are not UTF-8 stay as surrogates for the row check to find. Line ends are found in bytes
    (no multi-byte UTF-8 sequence holds a newline byte). Memory is bounded whatever the file:
    a line past `max_line_bytes` is dropped to its end and raises `LineTooLongError` once
    (the iterator goes on after it); a first line past `MAX_HEADER_BYTES` refuses the file."""

    def __init__(self, chunks: Iterable[bytes], max_line_bytes: int) -> None:
        self._chunks = iter(chunks)
        self._max = max_line_bytes
        self._pending = b""
        self._ready: deque[bytes | object] = deque()
        self._skipping = False
        self._first = True
        self.header_read = False

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        while not self._ready:
            chunk = next(self._chunks, None)
            if chunk is None:
                if not self._pending:
                    raise StopIteration
                self._ready.append(self._pending)
                self._pending = b""
                break
            self._take(chunk)
        raw = self._ready.popleft()
        if not isinstance(raw, bytes):  # _TOO_LONG
            raise LineTooLongError(f"line longer than {self._max:,} bytes")
        if self._first and raw.startswith(codecs.BOM_UTF8):
            raw = raw[len(codecs.BOM_UTF8) :]
        self._first = False
        return raw.decode("utf-8", errors="surrogateescape")

    def _take(self, chunk: bytes) -> None:
        parts = chunk.split(b"\n")
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            if self._skipping:
                if not last:
                    self._skipping = False  # the long line ends here
                continue
            self._pending += part if last else part + b"\n"
            if not last:
                self._ready.append(self._pending)
                self._pending = b""
            elif len(self._pending) > self._limit:
                if not self.header_read:
                    raise FileRefusedError(
                        f"no header row within the first {MAX_HEADER_BYTES:,} bytes"
                    )
                self._ready.append(_TOO_LONG)
                self._pending, self._skipping = b"", True

    @property
    def _limit(self) -> int:
        return self._max if self.header_read else MAX_HEADER_BYTES


_TOO_LONG = object()
"""Where a line too long was dropped."""


def read(chunks: Iterable[bytes], *, repeats: bool = True) -> Iterator[Item]:
    """Every data row of the file, in order, as a clinic event, a row error or a duplicate.
    Raises `FileRefusedError` before any item when the header is refused. `repeats=False`
    leaves event ids repeated in the file to the caller (the importer finds them in
    PostgreSQL, in bounded memory): the ids seen here are kept in memory, every one.

    A field is at most `MAX_FIELD_CHARS` long, so an unclosed quote swallows at most that much
    of the file before it is a row error, and a line at most four times that."""
    lines, reader, header = _opened(chunks)
    lines.header_read = True
    seen: dict[str, int] = {}
    row = 1
    while True:
        start = reader.line_num
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            row += 1
            yield RowError(row, reader.line_num, None, _csv_reason(exc, start))
            continue
        row += 1
        if not any(f.strip() for f in fields):  # a blank line: no record
            row -= 1
            continue
        item = check_row(header, row, reader.line_num, fields)
        if repeats and isinstance(item, ClinicEvent):
            first = seen.setdefault(item.event_id, row)
            if first != row:
                yield Duplicate(row, first, reader.line_num)
                continue
        yield item


def header_of(start: bytes) -> Header:
    """The header of a file from its first bytes (at least its first line, or the whole file
    if shorter); `FileRefusedError` as `read` refuses it."""
    return _opened([start[: MAX_HEADER_BYTES + 1]])[2]


def _opened(chunks: Iterable[bytes]) -> tuple[_Lines, _csv.Reader, Header]:
    """The file's lines, its CSV reader past the header, and the header (`FileRefusedError`
    when it is refused)."""
    if csv.field_size_limit() != MAX_FIELD_CHARS:  # process-wide: every import has this bound
        csv.field_size_limit(MAX_FIELD_CHARS)
    lines = _Lines(chunks, max_line_bytes=MAX_LINE_BYTES)
    reader = csv.reader(lines, strict=True)
    return lines, reader, _header(reader)


def _csv_reason(exc: csv.Error, start: int) -> str:
    if isinstance(exc, LineTooLongError):
        return f"the line is longer than {MAX_LINE_BYTES:,} bytes"
    text = str(exc)
    if "field larger than field limit" in text:
        return (f"a field runs past {MAX_FIELD_CHARS:,} characters: an unclosed quote? (the "
                f"row began after line {start})")  # fmt: skip
    if "unexpected end of data" in text:
        return "a quote is never closed before the end of the file"
    return "malformed quoting: a quote inside a field must be doubled and the field quoted"


def _header(reader: Iterator[list[str]]) -> Header:
    try:
        fields = next(reader)
    except StopIteration:
        raise FileRefusedError("the file is empty: a header row is required") from None
    except csv.Error:
        raise FileRefusedError("the header row is not valid CSV") from None
    if any(_SURROGATES.search(f) for f in fields):
        raise FileRefusedError("the file is not UTF-8")
    return Header.of(fields)
