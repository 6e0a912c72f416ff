"""The answer deadline: each wait takes the smaller of its bound and the time left."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from journeys_api import deadline
from journeys_api.deadline import AUDIT_RESERVE_SECONDS
from tests.unit.api.conftest import offline_settings


def test_outside_a_request_every_wait_keeps_its_own_bound() -> None:
    assert deadline.allowed(10) == 10
    assert deadline.allowed_for_audit(10) == 10


def test_waits_stop_short_of_the_audit_records_reserve() -> None:
    token = deadline.begin(12)
    try:
        assert 9 < deadline.allowed(100) <= 12 - AUDIT_RESERVE_SECONDS
        assert deadline.allowed(5) == 5
        assert 11 < deadline.allowed_for_audit(100) <= 12
        assert deadline.allowed_for_audit(1) == 1
    finally:
        deadline.end(token)
    assert deadline.allowed(100) == 100


def test_past_the_deadline_only_the_audit_record_still_waits_its_reserve() -> None:
    token = deadline.begin(1)  # already inside the reserve
    try:
        assert deadline.allowed(10) == 0
        assert deadline.allowed_for_audit(10) == AUDIT_RESERVE_SECONDS
    finally:
        deadline.end(token)


def test_the_answer_timeout_must_leave_room_beyond_the_reserve() -> None:
    with pytest.raises(ValidationError, match="answer_timeout_seconds"):
        offline_settings(answer_timeout_seconds=AUDIT_RESERVE_SECONDS)
    assert offline_settings().answer_timeout_seconds == 12
