"""The console's pages: HTML rendered here (Jinja2), made live with htmx and Server-Sent Events.

Each page that reads journeys, runs or patients is an `AuditedRoute` with the action of the
API route it mirrors, and calls that route's own code: the same scopes, the same sealed-row
handling, the same audit records, under the signed-in key's subject. A patient id never
appears in a URL: the runs filter takes it in a POST and puts its patient key (an HMAC) in
the URL instead. Every state-changing request carries the session's CSRF token.
"""

from __future__ import annotations

import functools
import json
import logging
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path as FilePath
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, Form, HTTPException, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from sse_starlette import EventSourceResponse, ServerSentEvent

from journeys_api import conversations
from journeys_api.audit import STREAMED_KEY, AuditedRoute, audited, touched
from journeys_api.auth import Scope
from journeys_api.console import editor, graph, health
from journeys_api.console.live import Conversations, Timelines
from journeys_api.console.sessions import CSRF_HEADER, Session, Sessions, cookie_name
from journeys_api.console.streams import Lease, StreamCount
from journeys_api.deps import ResourcesDep
from journeys_api.errors import invalid
from journeys_api.imports import ledger
from journeys_api.middleware import CONSOLE_POLICY
from journeys_api.pagination import Key, decode_cursor, next_cursor
from journeys_api.read_models import RunFilter
from journeys_api.resources import Resources
from journeys_api.routers import analytics, deliveries, imports, journeys, runs
from journeys_api.views import (
    TERMINAL_STATUSES,
    CancelRequest,
    ConversationView,
    RunEvent,
    RunStatus,
)
from journeys_contracts.audit import AuditAction
from journeys_contracts.schemas import contracts, schema_of
from journeys_contracts.statuses import RUN_STATUSES

log = logging.getLogger(__name__)

TEMPLATES = Jinja2Templates(directory=FilePath(__file__).parent / "templates")
PAGE = 25
STATUSES = RUN_STATUSES


class PageError(HTTPException):
    """An error a console page answers with its own HTML page."""


class SignInNeeded(HTTPException):
    def __init__(self, back: str) -> None:
        super().__init__(303, "sign in first", headers={"Location": back})


async def session_of(request: Request) -> Session | None:
    """The session the request's cookie names, if it is still good (read once a request)."""
    if not hasattr(request.state, "console_session"):
        sessions: Sessions = request.app.state.console_sessions
        request.state.console_session = await sessions.find(request.cookies.get(cookie_name(
            request.app.state.resources.settings.console_cookie_secure)))  # fmt: skip
    found = request.state.console_session
    return found if isinstance(found, Session) else None


def needs(scope: Scope) -> Any:
    """A dependency: the signed-in session, if it holds `scope` (else a 403 page)."""

    async def dependency(request: Request) -> Session:
        session = await session_of(request)
        if session is None:
            raise SignInNeeded("/console/sign-in")
        request.state.principal = session.principal  # for the audit record
        if not session.may(scope):
            raise PageError(403, f"this page needs the scope {scope}")
        return session

    return Depends(dependency)


def checked(request: Request, session: Session, form_token: str | None) -> None:
    """A state-changing request must send the session's CSRF token (form field or header)."""
    sent = form_token or request.headers.get(CSRF_HEADER)
    if not session.csrf_matches(sent):
        raise PageError(403, "this form is stale or was not sent by the console: reload the page")


def render(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
    session = getattr(request.state, "console_session", None)
    return TEMPLATES.TemplateResponse(
        request, name, {"session": session, "scope": Scope, **context}, status_code=status
    )


router = APIRouter(prefix="/console", route_class=AuditedRoute, include_in_schema=False)


@router.get("/journeys", openapi_extra=audited(AuditAction.JOURNEY_LIST))
async def journeys_page(
    request: Request,
    resources: ResourcesDep,
    session: Annotated[Session, needs(Scope.JOURNEYS_READ)],
    q: Annotated[str | None, Query(max_length=200)] = None,
    cursor: str | None = None,
) -> HTMLResponse:
    after = decode_cursor(cursor)
    rows = await resources.read_models.journeys(after, PAGE + 1, named=(q or "").strip() or None)
    keys = [Key(row["created_at"], row["journey_id"]) for row in rows]
    items = [
        {"id": row["journey_id"], "name": row["definition"].get("name", ""),
         "nodes": len(row["definition"].get("nodes", [])), "created_at": row["created_at"]}
        for row in rows[:PAGE]
    ]  # fmt: skip
    return render(request, "journeys.html", journeys=items, q=q or "",
                  next_cursor=next_cursor(keys, PAGE), cursor=cursor)  # fmt: skip


@router.post("/journeys", openapi_extra=audited(AuditAction.JOURNEY_CREATE))
async def create_journey(
    request: Request,
    resources: ResourcesDep,
    session: Annotated[Session, needs(Scope.JOURNEYS_WRITE)],
    definition: Annotated[str, Form(max_length=1_000_000)],
    csrf_token: Annotated[str | None, Form()] = None,
) -> Response:
    """Save the editor's definition through `POST /journeys`'s own code; refused, the editor
    again with each problem at its node (422)."""
    checked(request, session, csrf_token)
    found = editor.check(definition, resources.settings.max_lookback_seconds)
    if found.definition is None:
        return _editor(request, definition, found, status=422)
    created = await journeys.create_journey(found.definition, resources, Response())
    return RedirectResponse(f"/console/journeys/{created.journey_id}", status_code=303)


def _editor(request: Request, text: str, found: editor.Checked, status: int = 200) -> HTMLResponse:
    """The editor's page. CodeMirror puts its styles in a <style> element, which the policy
    lets in by this answer's nonce alone (it reads it from its script tag's `nonce`)."""
    nonce = secrets.token_urlsafe(18)
    page = render(request, "journey_new.html", status=status, text=text, nonce=nonce,
                  problems=found.problems,
                  preview=editor.marked(found.preview, found.problems))  # fmt: skip
    name, policy = CONSOLE_POLICY
    page.headers[name.decode()] = policy.decode().replace(
        "style-src 'self'", f"style-src 'self' 'nonce-{nonce}'"
    )
    return page


@router.get("/journeys/{journeyId}", openapi_extra=audited(AuditAction.JOURNEY_READ))
async def journey_page(
    request: Request,
    resources: ResourcesDep,
    session: Annotated[Session, needs(Scope.JOURNEYS_READ)],
    journey_id: Annotated[UUID, Path(alias="journeyId")],
) -> HTMLResponse:
    row = await resources.read_models.journey(journey_id)
    if row is None:
        raise PageError(404, "no such journey")
    counts = None
    if session.may(Scope.RUNS_READ):
        found = await resources.read_models.run_counts(journey_id)
        counts = [(status, found.get(status, 0)) for status in STATUSES]
    return render(request, "journey.html", journey_id=journey_id, definition=row["definition"],
                  created_at=row["created_at"], graph=graph.graph(row["definition"]),
                  counts=counts)  # fmt: skip


@router.get("/runs", openapi_extra=audited(AuditAction.RUN_LIST))
async def runs_page(
    request: Request,
    resources: ResourcesDep,
    session: Annotated[Session, needs(Scope.RUNS_READ)],
    journey: UUID | None = None,
    status: RunStatus | None = None,
    patient: Annotated[str | None, Query(pattern=r"^[A-Za-z0-9_-]{16,128}$")] = None,
    since: Annotated[date | None, Query(alias="from")] = None,
    until: Annotated[date | None, Query(alias="to")] = None,
    cursor: str | None = None,
) -> HTMLResponse:
    """Runs by journey, status, patient (by key) and the days they started (UTC, both
    included), oldest first, a page at a time."""
    filters = RunFilter(
        journey_id=journey, patient_key=patient, status=status,
        started_from=None if since is None else datetime.combine(since, time.min, UTC),
        started_before=None if until is None
        else datetime.combine(until + timedelta(days=1), time.min, UTC),
    )  # fmt: skip
    page = await runs._runs(resources, filters, PAGE, decode_cursor(cursor))
    names = {}
    for journey_id in {run.journey_id for run in page.items}:
        found = await resources.journeys.get(journey_id)
        names[journey_id] = found.name if found is not None else str(journey_id)
    query = {"journey": journey, "status": status, "patient": patient, "from": since, "to": until}
    return render(request, "runs.html", runs=page.items, names=names, statuses=STATUSES,
                  query={k: v for k, v in query.items() if v is not None},
                  next_cursor=page.next_cursor)  # fmt: skip


@router.post("/runs/patient", openapi_extra=audited(AuditAction.RUN_LIST))
async def find_patient(
    request: Request,
    resources: ResourcesDep,
    session: Annotated[Session, needs(Scope.RUNS_READ)],
    patient_id: Annotated[str, Form(min_length=1, max_length=255)],
    csrf_token: Annotated[str | None, Form()] = None,
) -> Response:
    """The runs of one patient, found by the patient key: the page's URL holds the key, never
    the id."""
    checked(request, session, csrf_token)
    return RedirectResponse(f"/console/runs?patient={_key_of(resources, patient_id)}",
                            status_code=303)  # fmt: skip


def _key_of(resources: Resources, patient_id: str) -> str:
    if "\x00" in patient_id:
        raise invalid(("body", "patient_id"), "must not contain the NUL character (U+0000)")
    key = resources.patient_key(patient_id)
    touched(patient_key=key)
    return key


@router.get("/runs/{runId}", openapi_extra=audited(AuditAction.RUN_READ))
async def run_page(
    request: Request,
    resources: ResourcesDep,
    session: Annotated[Session, needs(Scope.RUNS_READ)],
    run_id: Annotated[UUID, Path(alias="runId")],
    patient: bool = False,
) -> HTMLResponse:
    """The run, its journey's graph with the current node marked, and its live timeline. The
    patient id and context only when asked for (`?patient=true`): each showing is audited."""
    row = await runs._readable_run(resources, run_id)
    touched(patient_key=resources.patient_key_of(row))
    view = runs._view(row)
    journey = await resources.read_models.journey(view.journey_id)
    drawn = graph.graph(journey["definition"]) if journey is not None else None
    return render(request, "run.html", run=view, graph=drawn, show_patient=patient,
                  journey_name=journey["definition"].get("name") if journey else None,
                  terminal=view.status in TERMINAL_STATUSES,
                  may_cancel=session.may(Scope.RUNS_CANCEL))  # fmt: skip


@router.get("/runs/{runId}/stream", openapi_extra=audited(AuditAction.RUN_EVENTS_READ))
async def run_stream(
    request: Request,
    resources: ResourcesDep,
    session: Annotated[Session, needs(Scope.RUNS_READ)],
    run_id: Annotated[UUID, Path(alias="runId")],
) -> Response:
    """The run's timeline as Server-Sent Events: every event so far, then each new one as the
    projector records it (`event`, an HTML row), and the run's status when it changes
    (`status`); it ends with the run or with the session (signed out, expired, the key
    revoked: checked every half minute), or after half an hour (the browser then
    reconnects)."""
    streams = _stream_slot(request)
    try:
        first = await runs.get_run_events(run_id, resources)
    except BaseException:
        streams.give_back()
        raise
    timelines: Timelines = request.app.state.console_timelines

    async def events() -> AsyncIterator[ServerSentEvent]:
        try:
            async with timelines.follow(run_id) as updates:
                seen = -1
                for event in first.events:
                    seen = event.seq
                    yield ServerSentEvent(_row(request, event), event="event")
                row = await resources.read_models.run(run_id)
                if row is None:
                    return
                status = row["status"]
                yield _status(status, row["current_node_id"])
                lease = _lease(request, Scope.RUNS_READ)
                while (update := await lease.next(updates)) is not None:
                    for event in update.events:
                        if event.seq > seen:
                            seen = event.seq
                            yield ServerSentEvent(_row(request, event), event="event")
                    if update.status is not None and update.status != status:
                        status = update.status
                        yield _status(status, update.node)
                    if update.over:
                        break
                if update is not None or lease.signed_out:  # the run ended, or the session
                    yield ServerSentEvent("", event="end")
        finally:
            streams.give_back()

    return EventSourceResponse(events(), ping=15, send_timeout=30)


def _lease(request: Request, scope: Scope) -> Lease:
    """The stream's half hour, its session checked again as it runs: signed out, expired, the
    key revoked or its scope taken away, and the stream ends."""
    sessions: Sessions = request.app.state.console_sessions
    token = request.cookies.get(
        cookie_name(request.app.state.resources.settings.console_cookie_secure)
    )

    async def still_signed_in() -> bool:
        try:
            found = await sessions.find(token)
        except Exception:  # PostgreSQL away: the stream's pages keep what they have
            return True
        return found is not None and found.may(scope)

    return Lease(still_signed_in)


def _stream_slot(request: Request) -> StreamCount:
    """One of the process's live streams (`API_CONSOLE_MAX_STREAMS`), to give back when the
    stream ends; none left: 503 with Retry-After."""
    streams: StreamCount = request.app.state.console_streams
    if not streams.take():
        raise PageError(503, "too many live pages open: try again shortly",
                        headers={"Retry-After": "5"})  # fmt: skip
    return streams


def _status(status: str, node: str | None) -> ServerSentEvent:
    return ServerSentEvent(json.dumps({"status": status, "node": node}), event="status")


def _row(request: Request, event: RunEvent) -> str:
    template = TEMPLATES.get_template("_event.html")
    return template.render(event=event, request=request)


@router.post("/runs/{runId}/cancel", openapi_extra=audited(AuditAction.RUN_CANCEL))
async def cancel(
    request: Request,
    resources: ResourcesDep,
    session: Annotated[Session, needs(Scope.RUNS_CANCEL)],
    run_id: Annotated[UUID, Path(alias="runId")],
    reason: Annotated[str | None, Form(max_length=500)] = None,
    csrf_token: Annotated[str | None, Form()] = None,
) -> Response:
    checked(request, session, csrf_token)
    await runs.cancel_run(run_id, resources, CancelRequest(reason=(reason or "").strip() or None))
    return RedirectResponse(f"/console/runs/{run_id}", status_code=303)


@router.get("/imports", openapi_extra=audited(AuditAction.IMPORTS_LIST))
async def imports_page(
    request: Request,
    resources: ResourcesDep,
    session: Annotated[Session, needs(Scope.IMPORTS_READ)],
    cursor: str | None = None,
) -> HTMLResponse:
    """The upload (with `imports:write`) and the history of imports, newest first."""
    before = decode_cursor(cursor)
    rows = await ledger.list_imports(
        resources.pool, None if before is None else (before.created_at, before.id), PAGE + 1,
        newest_first=True,
    )  # fmt: skip
    keys = [Key(row["created_at"], row["import_id"]) for row in rows]
    return render(request, "imports.html", imports=[imports._view(r, []) for r in rows[:PAGE]],
                  next_cursor=next_cursor(keys, PAGE))  # fmt: skip


@router.post(
    "/imports/upload",
    openapi_extra={**audited(AuditAction.IMPORTS_CREATE), STREAMED_KEY: True},
)
async def upload_import(
    request: Request,
    resources: ResourcesDep,
    session: Annotated[Session, needs(Scope.IMPORTS_WRITE)],
    name: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    """The dropped file, streamed by `POST /imports`'s own code (a multipart body, its CSRF
    token in the header: the body is not read before the token is checked)."""
    checked(request, session, None)
    answer = Response()
    accepted = await imports.upload(request, resources, answer, session.principal, name=name,
                                    idempotency_key=None, notify=None)  # fmt: skip
    location = f"/console/imports/{accepted.import_id}"
    return JSONResponse(
        {"importId": str(accepted.import_id), "location": location}, status_code=202
    )


@router.get("/imports/{importId}", openapi_extra=audited(AuditAction.IMPORTS_READ))
async def import_page(
    request: Request,
    resources: ResourcesDep,
    session: Annotated[Session, needs(Scope.IMPORTS_READ)],
    import_id: Annotated[UUID, Path(alias="importId")],
    part: Literal["page", "figures"] = "page",
) -> HTMLResponse:
    """An import's figures, live while it runs (the `figures` part, asked for every second),
    and its first errors."""
    found = await ledger.get(resources.pool, import_id)
    if found is None:
        raise PageError(404, "no such import")
    row, errors = found
    view = imports._view(row, errors)
    # The file's lines (counted as it came) less the header: the rows, unless quoted cells
    # hold line breaks, which only makes the bar a little slow to fill.
    expected = max(1, row["lines"] - 1)
    done = 100 if view.status == "completed" else min(99, round(100 * view.rows_read / expected))
    template = "import.html" if part == "page" else "_import_figures.html"
    return render(request, template, item=view, percent=done,
                  running=view.status not in ("completed", "failed"))  # fmt: skip


@router.get(
    "/imports/{importId}/rejected.csv", openapi_extra=audited(AuditAction.IMPORTS_ERRORS_READ)
)
async def rejected_rows(
    request: Request,
    resources: ResourcesDep,
    session: Annotated[Session, needs(Scope.IMPORTS_READ)],
    import_id: Annotated[UUID, Path(alias="importId")],
) -> Response:
    """The rejected rows to fix and upload again, as `GET /imports/{id}/errors?format=csv`."""
    return await imports.list_errors(import_id, resources, format="csv")  # type: ignore[return-value]


@router.get("/analytics", openapi_extra=audited(AuditAction.ANALYTICS_READ))
async def analytics_page(
    request: Request,
    resources: ResourcesDep,
    session: Annotated[Session, needs(Scope.ANALYTICS_READ)],
    clinic: Annotated[str | None, Query(max_length=200)] = None,
    since: Annotated[str | None, Query(alias="from", max_length=10)] = None,
    until: Annotated[str | None, Query(alias="to", max_length=10)] = None,
    tz: Annotated[str, Query(max_length=64)] = "UTC",
) -> HTMLResponse:
    """`GET /analytics/weekly` as charts and a table; a bad field is said on the page."""
    query = {"clinic": clinic or "", "from": since or "", "to": until or "", "tz": tz}
    try:
        page = await analytics.weekly(
            resources, clinic or None, _day(since, "from"), _day(until, "to"), tz
        )
    except RequestValidationError as exc:
        problems = [f"{e['loc'][-1]}: {e['msg']}" for e in exc.errors()]
        return render(request, "analytics.html", status=422, query=query, page=None,
                      problems=problems, chart=None)  # fmt: skip
    return render(request, "analytics.html", query=query, page=page, problems=[],
                  chart=_chart(page.weeks))  # fmt: skip


def _day(text: str | None, name: str) -> date | None:
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise invalid(("query", name), "must be a day, YYYY-MM-DD") from None


def _chart(weeks: list[Any]) -> dict[str, Any]:
    """The figures by week, summed over the clinics shown, for the charts."""
    labels = sorted({w.iso_week for w in weeks})
    at = {label: i for i, label in enumerate(labels)}
    revenue = [0.0] * len(labels)
    appointments = [0] * len(labels)
    bookings = [0] * len(labels)
    by_type: dict[str, list[float]] = {}
    for w in weeks:
        i = at[w.iso_week]
        revenue[i] += float(w.revenue)  # drawn only: the table keeps the exact figures
        appointments[i] += w.appointments
        bookings[i] += w.bookings
        for kind, amount in w.revenue_by_treatment_type.items():
            by_type.setdefault(kind, [0.0] * len(labels))[i] += float(amount)
    return {"labels": labels, "revenue": revenue, "appointments": appointments,
            "bookings": bookings, "byType": by_type}  # fmt: skip


@router.get("/deliveries", openapi_extra=audited(AuditAction.DELIVERIES_LIST))
async def deliveries_page(
    request: Request,
    resources: ResourcesDep,
    session: Annotated[Session, needs(Scope.DELIVERIES_READ)],
    journey: UUID | None = None,
    cursor: str | None = None,
) -> HTMLResponse:
    """Messages given up (`GET /deliveries`), each with a Retry button for `deliveries:write`."""
    page = await deliveries.list_deliveries(resources, "failed", journey, PAGE, cursor)
    return render(request, "deliveries.html", messages=page.items, journey=journey,
                  next_cursor=page.next_cursor,
                  may_retry=session.may(Scope.DELIVERIES_WRITE))  # fmt: skip


@router.post("/deliveries/{messageId}/retry", openapi_extra=audited(AuditAction.DELIVERIES_RETRY))
async def retry_message(
    request: Request,
    resources: ResourcesDep,
    session: Annotated[Session, needs(Scope.DELIVERIES_WRITE)],
    message_id: Annotated[UUID, Path(alias="messageId")],
    journey: Annotated[UUID | None, Form()] = None,
    csrf_token: Annotated[str | None, Form()] = None,
) -> Response:
    """`POST /deliveries/{id}/retry`; its 409 (retried already, never asked for) on a page.
    Back to the list as it was filtered."""
    checked(request, session, csrf_token)
    try:
        await deliveries.retry_delivery(message_id, resources, session.principal)
    except HTTPException as exc:
        if exc.status_code != 409:
            raise
        raise PageError(409, str(exc.detail)) from None
    back = "/console/deliveries" + (f"?journey={journey}" if journey is not None else "")
    return RedirectResponse(back, status_code=303)


PatientKey = Annotated[str, Query(pattern=r"^[A-Za-z0-9_-]{16,128}$")]


@router.get("/deliveries/conversation", openapi_extra=audited(AuditAction.CONVERSATION_READ))
async def conversation_page(
    request: Request,
    resources: ResourcesDep,
    session: Annotated[Session, needs(Scope.RUNS_READ)],
    patient: PatientKey | None = None,
) -> HTMLResponse:
    """A patient's conversation (`POST /patients/conversation`), found by the patient key, and
    kept live; without a patient, the form that finds one."""
    found = None
    if patient is not None:
        touched(patient_key=patient)
        found = await conversations.conversation(resources, patient, Conversations.LIMIT)
    return render(request, "conversation.html", patient=patient, conversation=found)


@router.post(
    "/deliveries/conversation/patient", openapi_extra=audited(AuditAction.CONVERSATION_READ)
)
async def find_conversation(
    request: Request,
    resources: ResourcesDep,
    session: Annotated[Session, needs(Scope.RUNS_READ)],
    patient_id: Annotated[str, Form(min_length=1, max_length=255)],
    csrf_token: Annotated[str | None, Form()] = None,
) -> Response:
    """As the runs filter does: the page's URL holds the patient key, never the id."""
    checked(request, session, csrf_token)
    key = _key_of(resources, patient_id)
    return RedirectResponse(f"/console/deliveries/conversation?patient={key}", status_code=303)


@router.get("/deliveries/conversation/stream", openapi_extra=audited(AuditAction.CONVERSATION_READ))
async def conversation_stream(
    request: Request,
    resources: ResourcesDep,
    session: Annotated[Session, needs(Scope.RUNS_READ)],
    patient: PatientKey,
) -> Response:
    """The conversation as Server-Sent Events (`conversation`, the whole list as HTML): once
    now, then whenever a message goes out, a report or a reply comes in; until the session
    ends (checked every half minute), for half an hour at most (the browser then
    reconnects)."""
    streams = _stream_slot(request)
    touched(patient_key=patient)
    followed: Conversations = request.app.state.console_conversations
    template = TEMPLATES.get_template("_conversation.html")

    async def events() -> AsyncIterator[ServerSentEvent]:
        try:
            async with followed.follow(patient) as updates:
                view: ConversationView | None = await conversations.conversation(
                    resources, patient, followed.LIMIT
                )
                lease = _lease(request, Scope.RUNS_READ)
                while view is not None:
                    html = template.render(conversation=view, request=request)
                    yield ServerSentEvent(html, event="conversation")
                    view = await lease.next(updates)
                if lease.signed_out:
                    yield ServerSentEvent("", event="end")
        finally:
            streams.give_back()

    return EventSourceResponse(events(), ping=15, send_timeout=30)


ops = APIRouter(prefix="/console", include_in_schema=False)


@ops.get("/journeys/new")
async def new_journey(
    request: Request, session: Annotated[Session, needs(Scope.JOURNEYS_WRITE)]
) -> HTMLResponse:
    text = json.dumps(editor.STARTER, indent=2)
    return _editor(request, text, editor.check(text, float("inf")))


@ops.get("/journeys/schema.json")
async def journey_schema(
    session: Annotated[Session, needs(Scope.JOURNEYS_WRITE)],
) -> JSONResponse:
    """The journey definition's JSON Schema, for the editor's completion (to the editor's
    users, as the rest of the console): the contract's own (contracts/schemas/definition)."""
    return JSONResponse(_definition_schema(), headers={"Cache-Control": "private, max-age=3600"})


@functools.cache
def _definition_schema() -> dict[str, Any]:
    """Made by the code that writes contracts/schemas/definition, once, when first asked."""
    return schema_of(next(c for c in contracts() if c.name == "journey-definition.v1"))


@ops.post("/journeys/check")
async def check_journey(
    request: Request,
    resources: ResourcesDep,
    session: Annotated[Session, needs(Scope.JOURNEYS_WRITE)],
    definition: Annotated[str, Form(max_length=1_000_000)],
    csrf_token: Annotated[str | None, Form()] = None,
) -> HTMLResponse:
    """The editor's check as the definition is typed: problems by node and the graph so far.
    Nothing is saved, nothing read: no audit record."""
    checked(request, session, csrf_token)
    found = editor.check(definition, resources.settings.max_lookback_seconds)
    return render(request, "_editor_check.html", problems=found.problems,
                  preview=editor.marked(found.preview, found.problems))  # fmt: skip


@ops.get("/health")
async def health_page(request: Request, resources: ResourcesDep) -> HTMLResponse:
    """Readiness, lag, timers and dead letters: no patient data, so any signed-in user."""
    if await session_of(request) is None:
        raise SignInNeeded("/console/sign-in")
    settings = resources.settings
    found = await health.measure(settings.kafka_bootstrap_servers, resources.topics,
                                 resources.pool, settings.console_services)  # fmt: skip
    return render(request, "health.html", health=found)


def local_time(value: datetime | None) -> str:
    return "" if value is None else value.strftime("%Y-%m-%d %H:%M:%S UTC")


def short_type(kind: str) -> str:
    """`journeys.message.sent.v2` → `message.sent`: the part a person reads."""
    parts = kind.split(".")
    if parts and parts[0] == "journeys":
        parts = parts[1:]
    if parts and parts[-1][:1] == "v" and parts[-1][1:].isdigit():
        parts = parts[:-1]
    return ".".join(parts) or kind


TEMPLATES.env.filters["when"] = local_time
TEMPLATES.env.filters["short_type"] = short_type
TEMPLATES.env.filters["duration"] = graph.duration
