"""Latencies into an HdrHistogram, read back as percentiles: never an average alone."""

from __future__ import annotations

from typing import Any

from hdrh.histogram import HdrHistogram

MAX_MICROS = 3_600_000_000  # one hour


class Latencies:
    """Values in seconds, stored in microseconds with 3 significant digits."""

    def __init__(self) -> None:
        self._hist = HdrHistogram(1, MAX_MICROS, 3)
        self.count = 0
        self.negative = 0  # a value below zero (an early timer): counted, recorded as 0

    def record(self, seconds: float) -> None:
        self.count += 1
        if seconds < 0:
            self.negative += 1
        self._hist.record_value(min(max(round(seconds * 1e6), 1), MAX_MICROS))

    def percentile_ms(self, p: float) -> float:
        return round(self._hist.get_value_at_percentile(p) / 1000, 2)

    def summary(self) -> dict[str, Any]:
        """Milliseconds: p50, p90, p99, p99.9 and max, with the count."""
        if self.count == 0:
            return {"count": 0}
        return {
            "count": self.count,
            "p50_ms": self.percentile_ms(50),
            "p90_ms": self.percentile_ms(90),
            "p99_ms": self.percentile_ms(99),
            "p999_ms": self.percentile_ms(99.9),
            "max_ms": round(self._hist.get_max_value() / 1000, 2),
        }
