"""The due window: what it holds, in what order it gives timers back, and never early."""

from __future__ import annotations

import random
from datetime import timedelta

from journeys_scheduler.timers import Key, Timer
from journeys_scheduler.window import DueWindow
from tests.unit.scheduler.fakes import at, read_slice, timer


def fill(window: DueWindow, now: float, timers: list[Timer]) -> tuple[Key, int]:
    """Load as the firing loop does, from a store holding `timers`; returns (after, limit)."""
    after, limit = window.begin_load()
    until = at(now) + window.span
    window.load(at(now), after, until, read_slice(timers, window.partitions, after, until,
                                                  limit), limit)  # fmt: skip
    return after, limit


def loaded(
    *timers_due: float, partitions: tuple[int, ...] = (0,), max_entries: int = 100
) -> tuple[DueWindow, list[Timer]]:
    window = DueWindow(timedelta(seconds=60), max_entries)
    window.assign(partitions)
    timers = sorted((timer(d) for d in timers_due), key=lambda t: t.due_at)
    fill(window, 0, timers)
    return window, timers


def test_pops_timers_in_due_order_whatever_the_arrival_order() -> None:
    window, _ = loaded(max_entries=1000)
    dues = [random.uniform(0, 50) for _ in range(200)]
    for d in dues:
        window.offer(timer(d))
    popped = window.pop_due(at(59), limit=1000)
    assert [t.due_at for t in popped] == sorted(at(d) for d in dues)


def test_never_returns_a_timer_before_its_due_time() -> None:
    window, (t,) = loaded(10)
    assert window.pop_due(at(10) - timedelta(microseconds=1), limit=10) == []
    assert window.pop_due(at(10), limit=10) == [t]


def test_pops_at_most_the_limit_and_keeps_the_rest() -> None:
    window, timers = loaded(1, 2, 3)
    assert window.pop_due(at(5), limit=2) == timers[:2]
    assert window.pop_due(at(5), limit=2) == timers[2:]


def test_offer_of_a_nearer_timer_reports_it_became_the_earliest() -> None:
    window, _ = loaded(30)
    assert window.offer(timer(40)) is False
    assert window.offer(timer(5)) is True
    assert window.next_wake() == at(5)


def test_offer_ignores_timers_past_the_horizon_and_of_other_partitions() -> None:
    window, _ = loaded()
    assert window.offer(timer(61)) is False
    assert window.offer(timer(5, partition=3)) is False
    assert len(window) == 0


def test_offer_of_a_timer_already_held_keeps_one_copy() -> None:
    window, (t,) = loaded(5)
    assert window.offer(t) is False
    assert window.pop_due(at(10), limit=10) == [t]


def test_a_timer_offered_again_after_it_fired_is_not_held_again() -> None:
    window, (t,) = loaded(5)
    window.pop_due(at(5), limit=10)
    assert window.offer(t) is False
    assert len(window) == 0


def test_revoke_drops_the_timers_of_those_partitions_only() -> None:
    window = DueWindow(timedelta(seconds=60), 100)
    window.assign([0, 1])
    kept, dropped = timer(5, partition=0), timer(4, partition=1)
    fill(window, 0, [dropped, kept])
    window.revoke([1])
    assert window.partitions == {0}
    assert window.offer(timer(3, partition=1)) is False
    assert window.pop_due(at(10), limit=10) == [kept]


def test_assign_empties_the_window_and_asks_for_a_load() -> None:
    window, _ = loaded(5)
    window.assign([0, 2])
    assert len(window) == 0
    assert window.needs_refresh(at(0))
    assert window.offer(timer(1)) is False  # nothing is offered before the load


def test_removed_timers_never_fire() -> None:
    window, (a, b) = loaded(1, 2)
    window.remove([a.timer_id])
    assert window.pop_due(at(10), limit=10) == [b]


def test_refresh_is_due_half_a_window_after_a_load() -> None:
    window, _ = loaded(5)
    assert not window.needs_refresh(at(29))
    assert window.needs_refresh(at(30))
    assert window.next_wake() == at(5)


def test_a_load_cut_by_the_limit_fires_nothing_past_the_last_loaded_timer() -> None:
    window, timers = loaded(1, 2, 3, max_entries=3)
    assert window.horizon == at(3)
    assert window.truncated
    assert window.offer(timer(4)) is False  # PostgreSQL may hold timers due before it
    assert window.pop_due(at(10), limit=10) == timers
    assert window.needs_refresh(at(3))


def test_the_next_slice_is_read_from_the_horizon_once_half_the_window_fired() -> None:
    window = DueWindow(timedelta(seconds=60), 10)
    window.assign([0])
    stored = [timer(d) for d in range(1, 26)]
    fill(window, 0, stored)
    assert (len(window), window.horizon) == (10, at(10))
    window.pop_due(at(4), limit=100)
    assert not window.needs_refresh(at(4))
    window.pop_due(at(5), limit=100)
    assert window.needs_refresh(at(5))  # half fired: read on before the clock gets there
    assert fill(window, 5, stored) == ((at(10), stored[9].timer_id), 5)  # after the last read
    assert window.horizon == at(15)
    assert [t.due_at for t in window.pop_due(at(20), 100)] == [at(d) for d in range(6, 16)]


def test_a_wall_of_equal_due_times_is_read_slice_by_slice() -> None:
    window = DueWindow(timedelta(seconds=60), 4)
    window.assign([0])
    wall = [timer(5) for _ in range(10)]
    fired: list[Timer] = []
    while len(fired) < 10:
        fill(window, 5, [t for t in wall if t not in fired])
        fired += window.pop_due(at(5), limit=3)
    assert sorted(t.timer_id for t in fired) == sorted(t.timer_id for t in wall)


def test_nothing_past_the_horizon_fires_before_a_reload() -> None:
    window, (t,) = loaded(1, max_entries=5)
    late = timer(70)
    window.restore([late])  # e.g. a failed fire put back after the window moved
    assert window.pop_due(at(80), limit=10) == [t]
    assert late.timer_id in window


def test_overflow_evicts_the_latest_timers_and_pulls_the_horizon_back() -> None:
    window, _ = loaded(max_entries=10)
    for d in range(1, 12):
        window.offer(timer(d))
    assert len(window) == 9
    assert window.horizon == at(9)  # the last one kept
    assert window.offer(timer(9.5)) is False
    assert [t.due_at for t in window.pop_due(at(59), limit=100)] == [at(d) for d in range(1, 10)]
    assert window.needs_refresh(at(9))


def test_restored_timers_fire_on_the_next_pop() -> None:
    window, (t,) = loaded(1)
    popped = window.pop_due(at(1), limit=10)
    window.restore(popped)
    assert window.pop_due(at(2), limit=10) == [t]


def test_firing_is_held_after_an_assignment_until_the_consumer_catches_up() -> None:
    window = DueWindow(timedelta(seconds=60), 100)
    window.assign([0], hold_until=at(5))
    t = timer(1)
    fill(window, 0, [t])
    assert window.pop_due(at(2), limit=10) == []
    assert window.next_wake() == at(5)
    window.release()
    assert window.pop_due(at(2), limit=10) == [t]


def test_a_hold_ends_at_its_deadline_even_if_the_consumer_lags() -> None:
    window = DueWindow(timedelta(seconds=60), 100)
    window.assign([0], hold_until=at(5))
    fill(window, 0, [t := timer(1)])
    assert window.pop_due(at(5), limit=10) == [t]


def test_a_load_never_brings_back_a_timer_fired_but_not_yet_deleted() -> None:
    window, (t,) = loaded(1)
    window.pop_due(at(1), limit=10)
    fill(window, 1, [t])  # its row is still in PostgreSQL
    assert t.timer_id not in window
    window.confirm([t.timer_id])
    assert window.unconfirmed == set()


def test_a_timer_fired_while_a_load_runs_is_not_brought_back_by_it() -> None:
    window, (t,) = loaded(1)
    start, limit = window.begin_load()
    window.pop_due(at(1), limit=10)
    window.confirm([t.timer_id])  # deleted after the load read it
    window.load(at(1), start, at(61), [t], limit)
    assert t.timer_id not in window


def test_a_restored_timer_can_fire_again() -> None:
    window, (t,) = loaded(1)
    window.restore(window.pop_due(at(1), limit=10))
    assert window.unconfirmed == set()
    assert window.pop_due(at(1), limit=10) == [t]
