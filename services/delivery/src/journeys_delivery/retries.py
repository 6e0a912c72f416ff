"""When to try a message again: exponential backoff with full jitter (tenacity's
`wait_random_exponential`), at least as long as the provider's `Retry-After`, and never after
the channel's last attempt.

The wait is not slept here: the executor arms a durable timer for it (the scheduler's), so a
retry survives a restart of every service, and the run's timeline shows each attempt.
"""

from __future__ import annotations

import email.utils
from dataclasses import dataclass
from datetime import UTC, datetime

from tenacity import RetryCallState, wait_random_exponential

from journeys_contracts.commands import MAX_RETRY_AFTER_SECONDS


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int
    initial_seconds: float
    max_seconds: float

    def delay(self, attempt: int, retry_after: float | None = None) -> float | None:
        """Seconds to wait before attempt `attempt + 1`; None when `attempt` was the last."""
        if attempt >= self.max_attempts:
            return None
        state = RetryCallState(None, None, (), {})  # type: ignore[arg-type]
        state.attempt_number = attempt
        wait = wait_random_exponential(multiplier=self.initial_seconds, max=self.max_seconds)
        seconds = float(wait(state))
        if retry_after is not None:
            seconds = max(seconds, retry_after)
        return min(seconds, MAX_RETRY_AFTER_SECONDS)


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """`Retry-After` in seconds: delta-seconds or an HTTP date (RFC 9110); None if absent or
    unreadable (then backoff alone decides)."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())
