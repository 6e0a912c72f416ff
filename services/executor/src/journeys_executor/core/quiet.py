"""Quiet hours: when a message may not go out, in the patient's own time zone, and the first
minute after that when it may.

A window is a wall-clock span, `start` to `end` (21:00 to 08:00 crosses midnight), in the
patient's IANA time zone. The first allowed instant is found on the patient's clocks as they
are that day, so daylight saving changes are right both ways: on a spring-forward night an end
inside the skipped hour is the first minute after the skip, and on a fall-back night a wall
time the window covers is quiet both times it happens. Pure: the patient's zone comes in as a
`tzinfo` (the executor reads the IANA database, `journeys_executor.zones`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta, tzinfo

MINUTE = timedelta(minutes=1)


@dataclass(frozen=True)
class QuietHours:
    start: time
    end: time

    @classmethod
    def parse(cls, text: str) -> QuietHours:
        """`"21:00-08:00"`."""
        first, _, last = text.partition("-")
        return cls(time.fromisoformat(first.strip()), time.fromisoformat(last.strip()))

    def quiet_at(self, local: time) -> bool:
        """Whether a wall-clock time is inside the window (start included, end not)."""
        if self.start == self.end:
            return False
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end


def next_allowed(now: datetime, quiet: QuietHours, tz: tzinfo) -> datetime | None:
    """None when a message may go out at `now`; else the first whole minute after it (UTC)
    whose wall-clock time in `tz` is outside the window."""
    local = now.astimezone(tz)
    if not quiet.quiet_at(local.time()):
        return None
    # The window ends at `end` on the day of `now` or a later one. Both readings of that wall
    # time count: an ambiguous one (a fall-back hour) happens twice, and one in a
    # spring-forward gap reads as an instant before the gap (fold=1) and one after (fold=0);
    # the walk below moves the earliest on to the first minute that is really not quiet.
    for days in range(3):
        day = (local + timedelta(days=days)).date()
        ends = sorted(
            datetime.combine(day, quiet.end, tzinfo=tz).replace(fold=fold).astimezone(UTC)
            for fold in (0, 1)
        )
        if ends[-1] > now:
            # From the earliest reading still ahead, or from now when only the later one is
            # (a gap's end passed already): the walk finds the first minute really not quiet.
            return _first_quiet_free_minute(max(ends[0], now), quiet, tz)
    raise AssertionError("a quiet window ends within two days")  # pragma: no cover


def _first_quiet_free_minute(candidate: datetime, quiet: QuietHours, tz: tzinfo) -> datetime:
    """`candidate` on a whole minute, moved on past any minute still quiet (a fall-back hour
    that repeats the window's end)."""
    at = candidate.replace(second=0, microsecond=0)
    if at < candidate:
        at += MINUTE
    for _ in range(24 * 60):
        if not quiet.quiet_at(at.astimezone(tz).time()):
            return at
        at += MINUTE
    raise AssertionError("a quiet window ends within a day")  # pragma: no cover
