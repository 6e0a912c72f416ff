"""Patients' time zones: the IANA name in a patient context, read from the time zone database
(outside the pure core, which gets the zone as a `tzinfo`)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


def zone_reader(default: str) -> Callable[[object], tzinfo]:
    """A function from a context's `timezone` to its zone; `default` for a missing, malformed
    or unknown name."""
    fallback = ZoneInfo(default)

    @lru_cache(maxsize=1024)
    def named(name: str) -> tzinfo:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            return fallback

    def zone(name: object) -> tzinfo:
        return named(name) if isinstance(name, str) and name else fallback

    return zone
