"""Quiet hours: a message due inside the window goes at the first minute after it, in the
patient's time zone, across both daylight saving changes; the arithmetic holds for any window,
zone and time (property tests)."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from journeys_executor.core.quiet import MINUTE, QuietHours, next_allowed
from journeys_executor.zones import zone_reader

NIGHT = QuietHours.parse("21:00-08:00")
NEW_YORK, LONDON = ZoneInfo("America/New_York"), ZoneInfo("Europe/London")
ZONES = [
    ZoneInfo(z)
    for z in ("America/New_York", "Europe/London", "Australia/Lord_Howe", "Asia/Kolkata",
              "Pacific/Chatham", "America/Santiago", "UTC")
]  # fmt: skip


def at(text: str, tz: ZoneInfo, fold: int = 0) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=tz, fold=fold).astimezone(UTC)


def local(instant: datetime | None, tz: ZoneInfo) -> str:
    assert instant is not None
    return instant.astimezone(tz).strftime("%Y-%m-%d %H:%M %Z")


def test_a_message_due_at_23_goes_at_8_the_next_morning() -> None:
    assert local(next_allowed(at("2026-12-03T23:00", NEW_YORK), NIGHT, NEW_YORK), NEW_YORK) == (
        "2026-12-04 08:00 EST"
    )
    assert next_allowed(at("2026-12-04T10:00", NEW_YORK), NIGHT, NEW_YORK) is None


@pytest.mark.parametrize(
    ("tz", "due", "goes"),
    [
        # Spring forward: the night is an hour shorter, 8:00 is still 8:00 on the clock.
        (NEW_YORK, "2026-03-07T23:30", "2026-03-08 08:00 EDT"),
        (LONDON, "2026-03-28T22:15", "2026-03-29 08:00 BST"),
        # Fall back: the night is an hour longer, 8:00 is still 8:00 on the clock.
        (NEW_YORK, "2026-10-31T23:30", "2026-11-01 08:00 EST"),
        (LONDON, "2026-10-24T21:00", "2026-10-25 08:00 GMT"),
    ],
)
def test_the_night_ends_at_8_on_the_clock_across_both_changes(
    tz: ZoneInfo, due: str, goes: str
) -> None:
    assert local(next_allowed(at(due, tz), NIGHT, tz), tz) == goes


def test_an_end_inside_the_skipped_hour_is_the_end_of_the_skip() -> None:
    window = QuietHours.parse("01:00-02:30")  # 02:00 to 03:00 does not exist that night
    goes = next_allowed(at("2026-03-08T01:10", NEW_YORK), window, NEW_YORK)
    assert local(goes, NEW_YORK) == "2026-03-08 03:00 EDT"


def test_a_repeated_hour_is_quiet_both_times() -> None:
    window = QuietHours.parse("00:30-01:30")  # 01:00 to 02:00 happens twice that night
    first = at("2026-11-01T00:45", NEW_YORK)
    assert local(next_allowed(first, window, NEW_YORK), NEW_YORK) == "2026-11-01 01:30 EDT"
    assert next_allowed(at("2026-11-01T01:45", NEW_YORK, fold=0), window, NEW_YORK) is None
    again = at("2026-11-01T01:10", NEW_YORK, fold=1)
    assert local(next_allowed(again, window, NEW_YORK), NEW_YORK) == "2026-11-01 01:30 EST"


def test_a_zone_the_context_names_wrongly_falls_back_to_the_default() -> None:
    zone = zone_reader("Europe/London")
    assert zone("Europe/Paris") == ZoneInfo("Europe/Paris")
    for wrong in ("Mars/Olympus", "", None, 42, "../etc/passwd"):
        assert zone(wrong) == LONDON


times = st.times().map(lambda t: t.replace(second=0, microsecond=0))
instants = st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2035, 12, 31),
                        timezones=st.just(UTC))  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(start=times, end=times, now=instants, tz=st.sampled_from(ZONES))
def test_the_first_allowed_minute_is_the_first_minute_outside_the_window(
    start: time, end: time, now: datetime, tz: ZoneInfo
) -> None:
    window = QuietHours(start, end)
    goes = next_allowed(now, window, tz)
    quiet_now = window.quiet_at(now.astimezone(tz).time())
    if not quiet_now:
        assert goes is None
        return
    assert goes is not None
    assert goes > now
    assert goes.second == goes.microsecond == 0
    assert not window.quiet_at(goes.astimezone(tz).time())
    assert goes - now <= timedelta(hours=26)
    # Every whole minute from now until then is quiet: the message waits no longer than it must.
    minute = now.replace(second=0, microsecond=0) + MINUTE
    while minute < goes:
        assert window.quiet_at(minute.astimezone(tz).time()), minute
        minute += MINUTE


def test_an_end_in_the_skip_already_half_passed_is_still_the_end_of_the_skip() -> None:
    # The earlier reading of 02:30 (06:30 UTC) is before now, 01:45 EST (06:45 UTC); the
    # first minute outside the window is when the clocks jump, 03:00 EDT, not 03:30.
    window = QuietHours.parse("22:00-02:30")
    goes = next_allowed(at("2024-03-10T01:45", NEW_YORK), window, NEW_YORK)
    assert local(goes, NEW_YORK) == "2024-03-10 03:00 EDT"
