"""An import's running figures, and the messages that tell a team's chat about them.

Pure: items of `rows.read` in, counts out. Revenue is summed as `Decimal`, exactly; weeks are
ISO weeks (Monday start) in UTC, so no figure depends on the server's time zone. The messages
follow Slack's incoming-webhook format (`text` for notifications, `blocks` for the layout)
and hold figures only: never a cell of the file, which may be patient data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from journeys_api.imports.rows import ClinicEvent, Duplicate, Item, RowError

TOP_WEEKS = 5


def week_of(moment: datetime) -> date:
    """The Monday, in UTC, of the ISO week `moment` falls in."""
    day = moment.astimezone(UTC).date()
    return day - timedelta(days=day.weekday())


@dataclass
class Tally:
    """What an import has read so far."""

    rows: int = 0
    accepted: int = 0
    rejected: int = 0
    duplicates: int = 0
    revenue: Decimal = Decimal(0)
    revenue_by_week: dict[date, Decimal] = field(default_factory=dict)

    def add(self, item: Item) -> None:
        self.rows += 1
        if isinstance(item, RowError):
            self.rejected += 1
        elif isinstance(item, Duplicate):
            self.duplicates += 1
        else:
            self._accept(item)

    def _accept(self, event: ClinicEvent) -> None:
        self.accepted += 1
        if event.revenue is not None:
            self.revenue += event.revenue
            week = week_of(event.occurred_at)
            self.revenue_by_week[week] = self.revenue_by_week.get(week, Decimal(0)) + event.revenue

    def top_weeks(self, most: int = TOP_WEEKS) -> list[tuple[date, Decimal]]:
        """The weeks of most revenue, most first (the earlier week first on a tie)."""
        return sorted(self.revenue_by_week.items(), key=lambda w: (-w[1], w[0]))[:most]


def rate(rows: int, seconds: float) -> float:
    return rows / seconds if seconds > 0 else 0.0


def _money(amount: Decimal) -> str:
    return f"{amount:,.2f}"


def _fields(tally: Tally, seconds: float) -> list[dict[str, str]]:
    figures = [("Rows read", f"{tally.rows:,}"), ("Accepted", f"{tally.accepted:,}"),
               ("Rejected", f"{tally.rejected:,}"), ("Duplicates", f"{tally.duplicates:,}"),
               ("Revenue", _money(tally.revenue)),
               ("Rate", f"{rate(tally.rows, seconds):,.0f} rows/s")]  # fmt: skip
    return [{"type": "mrkdwn", "text": f"*{name}*\n{value}"} for name, value in figures]


def started(import_id: UUID, name: str | None) -> dict[str, Any]:
    what = f"`{name}`" if name else "a file"
    text = f"Import {import_id} started: reading {what}."
    return {"text": text, "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]}


def progressed(import_id: UUID, tally: Tally, seconds: float) -> dict[str, Any]:
    text = (f"Import {import_id}: {tally.rows:,} rows read, {tally.accepted:,} accepted, "
            f"{tally.rejected:,} rejected, revenue {_money(tally.revenue)}, "
            f"{rate(tally.rows, seconds):,.0f} rows/s.")  # fmt: skip
    return {"text": text, "blocks": [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"Import {import_id} in progress"}},
        {"type": "section", "fields": _fields(tally, seconds)},
    ]}  # fmt: skip


def finished(
    import_id: UUID, tally: Tally, seconds: float, status: str, reason: str | None = None
) -> dict[str, Any]:
    """The last message: totals, the top weeks by revenue, and why it failed if it did."""
    head = f"Import {import_id} {status} in {seconds:,.1f} s"
    if reason:
        head += f": {reason}"
    weeks = "\n".join(f"• week of {week.isoformat()}: {_money(amount)}"
                      for week, amount in tally.top_weeks()) or "no revenue"  # fmt: skip
    text = (f"{head}. {tally.rows:,} rows read, {tally.accepted:,} accepted, "
            f"{tally.rejected:,} rejected, {tally.duplicates:,} duplicates, revenue "
            f"{_money(tally.revenue)}.")  # fmt: skip
    return {"text": text, "blocks": [
        {"type": "section", "text": {"type": "mrkdwn", "text": head}},
        {"type": "section", "fields": _fields(tally, seconds)},
        {"type": "section", "text": {"type": "mrkdwn", "text": f"*Top weeks (UTC)*\n{weeks}"}},
    ]}  # fmt: skip
