"""Backoff with full jitter, bounded by the policy, never shorter than the provider asked,
and none after the last attempt."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from journeys_contracts.commands import MAX_RETRY_AFTER_SECONDS
from journeys_delivery.retries import RetryPolicy, parse_retry_after

POLICY = RetryPolicy(max_attempts=6, initial_seconds=2.0, max_seconds=60.0)


@given(st.integers(min_value=1, max_value=5))
def test_the_wait_is_random_up_to_the_doubled_initial_capped(attempt: int) -> None:
    delay = POLICY.delay(attempt)
    assert delay is not None
    assert 0 <= delay <= min(60.0, 2.0 * 2 ** (attempt - 1))


def test_the_waits_spread_rather_than_march_in_step() -> None:
    delays = {POLICY.delay(4) for _ in range(50)}
    assert len(delays) > 40


@given(st.integers(min_value=1, max_value=5), st.floats(min_value=0, max_value=10**7))
def test_the_wait_is_at_least_the_providers_retry_after_within_a_week(
    attempt: int, retry_after: float
) -> None:
    delay = POLICY.delay(attempt, retry_after)
    assert delay is not None
    assert delay >= min(retry_after, MAX_RETRY_AFTER_SECONDS)
    assert delay <= MAX_RETRY_AFTER_SECONDS


@given(st.integers(min_value=6, max_value=100))
def test_no_wait_after_the_last_attempt(attempt: int) -> None:
    assert POLICY.delay(attempt) is None
    assert POLICY.delay(attempt, retry_after=5) is None


def test_retry_after_reads_seconds_and_http_dates() -> None:
    now = datetime(2026, 12, 4, 8, 0, 0, tzinfo=UTC)
    assert parse_retry_after("120", now) == 120.0
    assert parse_retry_after("Fri, 04 Dec 2026 08:01:30 GMT", now) == 90.0
    assert parse_retry_after("Fri, 04 Dec 2026 07:59:00 GMT", now) == 0.0
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after(None, now) is None
