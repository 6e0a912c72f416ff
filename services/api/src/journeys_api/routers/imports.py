"""`/imports`: clinic events from CSV files, uploaded once, imported by the importers.

`POST /imports` streams the file (the raw body, or the field `file` of a multipart body) into
the ledger (`imports/ledger.py`) chunk by chunk, never holding it: its header is checked from
the first bytes (a file refused as a whole is a 422 and leaves nothing), its SHA-256 and lines
counted as it comes. Once the whole file is in, the import is queued, or, when an import of
the same bytes exists (and did not fail), this upload is dropped and that import answered. An
upload cut short (the client gone, the size limit reached) ends as a `failed` import saying
how far it got.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Header, Path, Query, Request, Response
from fastapi.responses import StreamingResponse
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

from journeys_api.audit import STREAMED_KEY, AuditedRoute, audited
from journeys_api.auth import Principal, Scope, require
from journeys_api.deps import ResourcesDep
from journeys_api.errors import invalid, not_found
from journeys_api.imports import ledger
from journeys_api.imports.ledger import Row
from journeys_api.imports.multipart import FilePart
from journeys_api.imports.rows import (
    ERROR_COLUMN,
    MAX_HEADER_BYTES,
    FileRefusedError,
    header_of,
)
from journeys_api.imports.settings import WEBHOOK_NAME
from journeys_api.openapi import AUTH_ERRORS, UNAVAILABLE
from journeys_api.pagination import DEFAULT_LIMIT, MAX_LIMIT, Key, decode_cursor, next_cursor
from journeys_api.views import (
    ChatFigures,
    ImportAccepted,
    ImportPage,
    ImportView,
    RowProblem,
    RowProblemPage,
)
from journeys_contracts.audit import AuditAction

router = APIRouter(prefix="/imports", tags=["imports"], route_class=AuditedRoute)

CHUNK_BYTES = 1024 * 1024
_UPLOAD_ANSWERS: dict[int | str, dict[str, Any]] = {
    **AUTH_ERRORS, 413: {"description": "the upload is over API_IMPORT_MAX_BYTES"},
    415: {"description": "not a CSV upload"}, 503: UNAVAILABLE,
}  # fmt: skip
_UPLOAD_EXTRA: dict[str, Any] = {
    **audited(AuditAction.IMPORTS_CREATE), STREAMED_KEY: True,
    "requestBody": {"required": True, "content": {
        "text/csv": {"schema": {"type": "string", "format": "binary"}},
        "multipart/form-data": {"schema": {
            "type": "object", "required": ["file"],
            "properties": {"file": {"type": "string", "format": "binary"}}}},
    }},
}  # fmt: skip
CSV_TYPES = ("text/csv", "application/csv", "text/plain", "application/octet-stream")


@router.post(
    "",
    status_code=202,
    summary="Upload a CSV file of clinic events to import",
    description="The file as the raw body (`Content-Type: text/csv`) or as the field `file` of a "
    "`multipart/form-data` body (`curl -F file=@events.csv`), streamed: any size up to "
    "`API_IMPORT_MAX_BYTES`, never held whole in memory or on disk. Required columns "
    "`event_id`, `clinic_id`, `patient_id`, `event_type`, `event_timestamp` (ISO 8601 with an "
    "offset); optional `appointment_id`, "
    "`treatment_id`, `channel`, `treatment_type`, `appointment_status_snapshot`, "
    "`revenue_amount` (only on `TREATMENT_COMPLETED`), `doctor_id`, `notes`; others are kept. "
    "202 once the file is stored: an importer then makes each valid row a patient event "
    "(`GET /imports/{importId}` follows it; a bad row is reported with its row number, column "
    "and reason, and the import goes on). The same bytes, or the same `Idempotency-Key`, "
    "uploaded again answer the same import and import nothing twice. 422 when the header "
    "lacks a required column, the file is not CSV or not UTF-8 (nothing is kept); 415 for "
    "another content type.",
    dependencies=[require(Scope.IMPORTS_WRITE)],
    responses=_UPLOAD_ANSWERS,
    openapi_extra=_UPLOAD_EXTRA,
)
async def upload(
    request: Request,
    resources: ResourcesDep,
    response: Response,
    caller: Annotated[Principal, require(Scope.IMPORTS_WRITE)],
    name: Annotated[str | None, Query(max_length=200, description="the file's name, for "
                                      "people reading the import")] = None,
    idempotency_key: Annotated[str | None, Header(min_length=1, max_length=255)] = None,
    notify: Annotated[str | None, Query(pattern=WEBHOOK_NAME, description="the name of a "
                                        "progress webhook the importer has "
                                        "(IMPORTER_PROGRESS_WEBHOOKS) to tell instead of the "
                                        "deployment's; never a URL")] = None,
) -> ImportAccepted:  # fmt: skip
    header = request.headers.get("content-type", "")
    content_type = header.split(";")[0].strip().lower()
    form: FilePart | None = None
    if content_type == "multipart/form-data":
        try:
            form = FilePart(header)
        except FileRefusedError as exc:
            raise invalid(("header", "content-type"), str(exc)) from None
    elif content_type not in CSV_TYPES:
        raise HTTPException(415, "send the CSV file as the body, Content-Type: text/csv, or as "
                                 "the field `file` of a multipart/form-data body")  # fmt: skip
    pool = resources.pool
    if notify is not None and not await ledger.webhook_listed(pool, notify):
        raise invalid(("query", "notify"), "no progress webhook of this name: the importer's "
                      "IMPORTER_PROGRESS_WEBHOOKS lists the names there are")  # fmt: skip
    begun = await ledger.begin(pool, caller.subject, name, idempotency_key, notify)
    if begun.existing:
        return await _answer(resources, response, begun.import_id)
    digest, size, lines, seq = hashlib.sha256(), 0, 0, 0
    pending, columns = bytearray(), None
    try:
        async for piece in request.stream():
            pending += piece if form is None else form.feed(piece)
            if columns is None and (len(pending) >= MAX_HEADER_BYTES):
                columns = header_of(bytes(pending)).columns
            while len(pending) >= CHUNK_BYTES:
                chunk = bytes(pending[:CHUNK_BYTES])
                del pending[:CHUNK_BYTES]
                digest.update(chunk)
                size, lines = size + len(chunk), lines + chunk.count(b"\n")
                await ledger.add_chunk(pool, begun.import_id, seq, chunk)
                seq += 1
        if form is not None:
            form.end()
        if columns is None:
            columns = header_of(bytes(pending)).columns
        if pending:
            rest = bytes(pending)
            digest.update(rest)
            size, lines = size + len(rest), lines + rest.count(b"\n")
            await ledger.add_chunk(pool, begun.import_id, seq, rest)
            seq += 1
    except FileRefusedError as exc:
        await ledger.forget(pool, begun.import_id)
        raise invalid(("body",), str(exc)) from None
    except (ClientDisconnect, HTTPException) as exc:
        why = "the client went away" if isinstance(exc, ClientDisconnect) else "size limit"
        reached = lines + pending.count(b"\n") + 1
        reason = (f"the upload was cut short ({why}) after {size + len(pending):,} bytes, at "
                  f"line {reached:,}")  # fmt: skip
        await ledger.fail_upload(pool, begun.import_id, reason)
        if isinstance(exc, ClientDisconnect):  # nobody to answer: a 400 for the logs and audit
            raise HTTPException(400, reason) from None
        raise
    import_id = await ledger.uploaded(
        pool, begun.import_id, digest.hexdigest(), size, lines, seq, columns=list(columns),
        file_name=form.file_name if form is not None else None,
    )  # fmt: skip
    return await _answer(resources, response, import_id)


async def _answer(resources: ResourcesDep, response: Response, import_id: UUID) -> ImportAccepted:
    response.headers["Location"] = f"/imports/{import_id}"
    status = await ledger.status_of(resources.pool, import_id)
    return ImportAccepted(import_id=import_id, status=status or ledger.QUEUED)


@router.get(
    "",
    summary="List imports, oldest first",
    dependencies=[require(Scope.IMPORTS_READ)],
    responses={
        **AUTH_ERRORS,
        422: {"description": "a cursor this API did not issue"},
        503: UNAVAILABLE,
    },
    openapi_extra=audited(AuditAction.IMPORTS_LIST),
)
async def list_imports(
    resources: ResourcesDep,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    cursor: Annotated[str | None, Query(description="`nextCursor` of the previous page")] = None,
) -> ImportPage:
    after = decode_cursor(cursor)
    rows = await ledger.list_imports(
        resources.pool, None if after is None else (after.created_at, after.id), limit + 1
    )
    keys = [Key(row["created_at"], row["import_id"]) for row in rows]
    items = [_view(row, []) for row in rows[:limit]]
    return ImportPage(items=items, next_cursor=next_cursor(keys, limit))


@router.get(
    "/{importId}/errors",
    summary="Every row an import did not take, by row",
    description="Paged by row number (`after`). `format=csv` answers the rejected rows "
    "themselves as a CSV file in the upload's own columns, each with a last column "
    f"`{ERROR_COLUMN}` saying what to fix (row, line, column, reason): fix them and upload the "
    f"file again (an upload's `{ERROR_COLUMN}` column is never imported). Repeated event ids "
    "are not in it (they were imported once). A rejected row's cells are kept "
    "`IMPORTER_ERROR_ROWS_DAYS` after the import (and go with an erasure of its patient); "
    "then its row has empty cells. Reasons name rules and columns, never a cell's value.",
    dependencies=[require(Scope.IMPORTS_READ)],
    responses={
        **AUTH_ERRORS,
        200: {"content": {"text/csv": {}}},
        404: {"description": "no import of this id"},
        503: UNAVAILABLE,
    },
    openapi_extra=audited(AuditAction.IMPORTS_ERRORS_READ),
    response_model=RowProblemPage,
)
async def list_errors(
    import_id: Annotated[UUID, Path(alias="importId")],
    resources: ResourcesDep,
    after: Annotated[int, Query(ge=0, description="the last row of the previous page")] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT * 5)] = DEFAULT_LIMIT,
    format: Annotated[Literal["json", "csv"], Query()] = "json",
) -> RowProblemPage | Response:
    if await ledger.status_of(resources.pool, import_id) is None:
        raise not_found("import", import_id)
    if format == "csv":
        columns = await ledger.columns_of(resources.pool, import_id) or []
        return StreamingResponse(
            _rejected_rows(resources, import_id, columns),
            media_type="text/csv",
            headers={
                "Content-Disposition": f'attachment; filename="import-{import_id}-rejected.csv"'
            },
        )
    rows = await ledger.errors(resources.pool, import_id, after, limit + 1)
    items = [_problem(r) for r in rows[:limit]]
    return RowProblemPage(items=items, next_after=items[-1].row if len(rows) > limit else None)


@router.get(
    "/{importId}",
    summary="Follow an import: its state, figures and first errors",
    dependencies=[require(Scope.IMPORTS_READ)],
    responses={**AUTH_ERRORS, 404: {"description": "no import of this id"}, 503: UNAVAILABLE},
    openapi_extra=audited(AuditAction.IMPORTS_READ),
)
async def get_import(
    import_id: Annotated[UUID, Path(alias="importId")], resources: ResourcesDep
) -> ImportView:
    found = await ledger.get(resources.pool, import_id)
    if found is None:
        raise not_found("import", import_id)
    row, errors = found
    return _view(row, errors)


ROWS_PER_READ = 2000


async def _rejected_rows(
    resources: ResourcesDep, import_id: UUID, columns: list[str]
) -> AsyncIterator[bytes]:
    """The file of rejected rows, a page of them read at a time: the header, then each row's
    cells with what to fix in `ERROR_COLUMN` (the column the file has, if it came back with
    one, else a last one)."""
    at = columns.index(ERROR_COLUMN) if ERROR_COLUMN in columns else len(columns)
    header = columns if at < len(columns) else [*columns, ERROR_COLUMN]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    after = 0
    while True:
        rows = await ledger.errors(resources.pool, import_id, after, ROWS_PER_READ)
        for r in rows:
            if r["duplicate"]:
                continue
            cells = list(r["cells"] or [""] * len(columns))
            cells += [""] * (at + 1 - len(cells))
            where = f"row {r['row_number']}, line {r['line']}"
            column = f", {r['column_name']}" if r["column_name"] else ""
            cells[at] = f"{where}{column}: {r['reason']}"
            writer.writerow(cells)
        yield out.getvalue().encode()
        out.seek(0)
        out.truncate()
        if len(rows) < ROWS_PER_READ:
            return
        after = rows[-1]["row_number"]


def _problem(e: Row) -> RowProblem:
    return RowProblem(row=e["row_number"], line=e["line"], column=e["column_name"],
                      reason=e["reason"])  # fmt: skip


def _view(row: Row, errors: list[Row]) -> ImportView:
    rate = None
    if row["started_at"] is not None and row["rows_read"]:
        end = row["finished_at"] or row["heartbeat_at"] or row["started_at"]
        seconds = (end - row["started_at"]).total_seconds()
        rate = round(row["rows_read"] / seconds, 1) if seconds > 0 else None
    return ImportView(
        import_id=row["import_id"], status=row["status"], file_name=row["file_name"],
        bytes=row["bytes"], rows_read=row["rows_read"], accepted=row["accepted"],
        rejected=row["rejected"], duplicates=row["duplicates"],
        revenue=str(ledger.revenue_of(row["revenue"])), reason=row["reason"],
        created_at=row["created_at"], started_at=row["started_at"],
        finished_at=row["finished_at"], rows_per_second=rate,
        chat=ChatFigures(delivered=row["chat_delivered"],
                         failed_attempts=row["chat_failed_attempts"],
                         given_up=row["chat_given_up"], last_error=row["chat_last_error"]),
        errors=[_problem(e) for e in errors],
    )  # fmt: skip
