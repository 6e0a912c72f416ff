"""`/analytics/weekly`: each clinic's figures per ISO week (Monday start), from the read model
the projector keeps of every patient event that names a clinic (`clinic_events`): whichever
way the events came in (CSV imports, `POST /events`, webhooks, other teams' topics), each
counted once. Revenue is summed in `numeric` and answered as a decimal string: exact.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter, Query
from psycopg import sql
from psycopg.rows import dict_row

from journeys_api.audit import AuditedRoute, audited
from journeys_api.auth import Scope, require
from journeys_api.deps import ResourcesDep
from journeys_api.errors import invalid
from journeys_api.openapi import AUTH_ERRORS, UNAVAILABLE
from journeys_api.views import WeeklyFigures, WeeklyPage
from journeys_contracts.audit import AuditAction

router = APIRouter(prefix="/analytics", tags=["analytics"], route_class=AuditedRoute)

# `week` is the Monday, in the zone asked for, of the week the event happened in.
_WEEK = sql.SQL("(date_trunc('week', occurred_at AT TIME ZONE %(tz)s))::date")
_WHERE = sql.SQL(
    "WHERE (%(clinic)s::text IS NULL OR clinic_id = %(clinic)s) "
    "AND (%(from)s::date IS NULL OR occurred_at >= %(from)s::date::timestamp AT TIME ZONE %(tz)s) "
    "AND (%(to)s::date IS NULL OR occurred_at < (%(to)s::date + 1)::timestamp AT TIME ZONE %(tz)s)"
)
_TOTALS = sql.SQL(
    "SELECT clinic_id, {week} AS week, count(*) AS events, "
    "coalesce(sum(revenue), 0) AS revenue, "
    "count(*) FILTER (WHERE event_type ~* '^treatment[._-]?completed$') AS treatments, "
    "count(*) FILTER (WHERE event_type ILIKE '%%appointment%%') AS appointments, "
    "count(*) FILTER (WHERE event_type ILIKE '%%booking%%' OR event_type ILIKE '%%booked%%') "
    "AS bookings FROM clinic_events {where} GROUP BY 1, 2 ORDER BY 2, 1"
).format(week=_WEEK, where=_WHERE)
_BY_TREATMENT = sql.SQL(
    "SELECT clinic_id, {week} AS week, coalesce(treatment_type, '') AS treatment, "
    "sum(revenue) AS revenue FROM clinic_events {where} AND revenue IS NOT NULL "
    "GROUP BY 1, 2, 3 ORDER BY 3"
).format(week=_WEEK, where=_WHERE)


@router.get(
    "/weekly",
    summary="Each clinic's figures per ISO week",
    description="Per ISO week (Monday start, in `tz`: an IANA zone, UTC by default) and "
    "clinic: `revenue` (a decimal string, exact), `revenueByTreatmentType`, "
    "`treatmentsCompleted` (events `treatment_completed`), `appointments` (event types "
    "containing `appointment`), `bookings` (containing `booking` or `booked`) and `events`. "
    "`from` and `to` are days in `tz`, both included. Events count once however often they "
    "are sent or imported; the read model follows Kafka within milliseconds.",
    dependencies=[require(Scope.ANALYTICS_READ)],
    responses={
        **AUTH_ERRORS,
        422: {"description": "a parameter named, with why"},
        503: UNAVAILABLE,
    },
    openapi_extra=audited(AuditAction.ANALYTICS_READ),
)
async def weekly(
    resources: ResourcesDep,
    clinic_id: Annotated[str | None, Query(alias="clinicId", min_length=1, max_length=200)] = None,
    since: Annotated[date | None, Query(alias="from", description="the first day")] = None,
    until: Annotated[date | None, Query(alias="to", description="the last day")] = None,
    tz: Annotated[str, Query(max_length=64, description="an IANA time zone")] = "UTC",
) -> WeeklyPage:
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise invalid(("query", "tz"), "must name an IANA time zone, like Europe/Madrid") from None
    if since is not None and until is not None and until < since:
        raise invalid(("query", "to"), "must not be before `from`")
    params = {"clinic": clinic_id, "from": since, "to": until, "tz": tz}
    async with resources.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(_TOTALS, params)
        totals = await cur.fetchall()
        await cur.execute(_BY_TREATMENT, params)
        by_treatment = await cur.fetchall()
    treatments: dict[tuple[str, date], dict[str, str]] = {}
    for row in by_treatment:
        treatments.setdefault((row["clinic_id"], row["week"]), {})[
            row["treatment"] or "unspecified"] = _money(row["revenue"])  # fmt: skip
    return WeeklyPage(tz=tz, weeks=[_figures(row, treatments) for row in totals])


def _figures(row: dict[str, Any], treatments: dict[tuple[str, date], dict[str, str]]) -> Any:
    week: date = row["week"]
    year, number, _ = week.isocalendar()
    return WeeklyFigures(
        week=week, iso_week=f"{year}-W{number:02d}", clinic_id=row["clinic_id"],
        revenue=_money(row["revenue"]),
        revenue_by_treatment_type=treatments.get((row["clinic_id"], week), {}),
        treatments_completed=row["treatments"], appointments=row["appointments"],
        bookings=row["bookings"], events=row["events"],
    )  # fmt: skip


def _money(value: Decimal) -> str:
    return format(value, "f")
