"""The alarm sleeps until its deadline unless a nearer timer wakes it."""

from __future__ import annotations

import asyncio

from journeys_scheduler.clock import Alarm
from tests.unit.scheduler.fakes import FakeClock, settle


async def test_alarm_returns_at_its_deadline_when_nobody_wakes_it() -> None:
    clock = FakeClock()
    alarm = Alarm(clock.sleep)
    waiting = asyncio.create_task(alarm.wait(10))
    await clock.advance(9.999)
    assert not waiting.done()
    await clock.advance(0.001)
    assert waiting.done()
    assert waiting.result() is False


async def test_alarm_wakes_early_when_woken() -> None:
    clock = FakeClock()
    alarm = Alarm(clock.sleep)
    waiting = asyncio.create_task(alarm.wait(3600))
    await settle()
    alarm.wake()
    await settle()
    assert waiting.done()
    assert waiting.result() is True


async def test_a_wake_before_the_wait_is_not_lost() -> None:
    alarm = Alarm(FakeClock().sleep)
    alarm.wake()
    assert await alarm.wait(3600) is True
