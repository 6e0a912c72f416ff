"""The FireTimer record: same key as the delay, deterministic id, run id as subject."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from journeys_contracts.commands import FireTimer, decode_command
from journeys_contracts.envelope import header
from journeys_scheduler.publisher import fire_record
from journeys_scheduler.timers import Timer


def test_fire_record_carries_the_timer_and_the_actual_fire_time() -> None:
    due = datetime(2030, 1, 1, tzinfo=UTC)
    timer = Timer(uuid.uuid4(), uuid.uuid4(), "ab" * 32, 3, due)
    key, value, headers = fire_record(timer, due + timedelta(milliseconds=2))
    command = decode_command(value)
    assert isinstance(command, FireTimer)
    assert (command.run_id, command.timer_id, command.due_at) == (timer.run_id, timer.timer_id, due)
    assert command.fired_at == due + timedelta(milliseconds=2)
    assert key == timer.patient_key.encode()
    assert header(headers, "ce_id") == str(uuid.uuid5(timer.timer_id, "fire"))
    assert header(headers, "ce_type") == "journeys.command.fire_timer.v1"
    assert header(headers, "ce_source") == "/journeys/scheduler"
    assert header(headers, "ce_subject") == str(timer.run_id)


def test_every_fire_of_a_timer_has_the_same_id() -> None:
    timer = Timer(uuid.uuid4(), uuid.uuid4(), "k", 0, datetime(2030, 1, 1, tzinfo=UTC))
    first = fire_record(timer, timer.due_at)[2]
    again = fire_record(timer, timer.due_at + timedelta(seconds=5))[2]
    assert header(first, "ce_id") == header(again, "ce_id")
