"""Property: any interleaving of patient events (repeats among them), timers, cancels and the
passing of time ends each wait exactly once, never early, and never applies an event twice."""

from __future__ import annotations

import uuid
from collections import Counter

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from journeys_contracts import commands as cmd
from journeys_contracts import events as ev
from journeys_executor.core import EventPolicy, fold
from tests.unit.executor.helpers import delay, message
from tests.unit.executor.patients import Partition, events_journey, wait_for

DAY = 86400.0
JOURNEY = uuid.UUID("44444444-4444-4444-8444-444444444444")
# Triggered on `booked`; waits for `form` (with look-back), loops through a delay; exits on
# `cancelled`. Re-entry always, so events keep starting runs beside the ones waiting.
JOURNEY_DEF = events_journey(
    message("hello", "form"),
    wait_for("form", "form", 2 * DAY, "pause", "hello", lookback=DAY),
    delay("pause", DAY / 2, "form"),
    triggers=[{"event": "booked"}], exit_on=[{"event": "cancelled"}], reentry="always",
)  # fmt: skip

actions = st.lists(
    st.one_of(
        st.tuples(st.just("event"), st.sampled_from(["booked", "form", "cancelled", "other"]),
                  st.integers(0, 6)),
        st.tuples(st.just("fire"), st.integers(0, 3), st.booleans()),
        st.tuples(st.just("cancel"), st.integers(0, 3)),
        st.tuples(st.just("later"), st.sampled_from([60.0, 3600.0, DAY, 3 * DAY])),
    ),
    max_size=40,
)  # fmt: skip


@settings(deadline=None, max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(actions=actions, started=st.integers(0, 2))
def test_every_wait_ends_exactly_once_and_no_event_is_applied_twice(
    actions: list[tuple], started: int
) -> None:
    p = Partition({JOURNEY: JOURNEY_DEF}, EventPolicy(dedup_seconds=366 * DAY, keep_max=5))
    for _ in range(started):
        p.start(JOURNEY_DEF, JOURNEY)
    sent: Counter[str] = Counter()
    for action in actions:
        runs = sorted(p.runs, key=str)
        if action[0] == "event":
            _, kind, n = action
            event_id = f"{kind}-{n}"
            first = p.event(event_id, kind)
            assert first == (sent[event_id] == 0)  # a repeat is always a duplicate here
            sent[event_id] += 1
        elif action[0] == "fire" and runs:
            run = runs[action[1] % len(runs)]
            timer = p.runs[run].pending_timer
            if timer is not None:
                if action[2]:  # early: refused, changes nothing
                    early = cmd.FireTimer(run_id=run, timer_id=timer.timer_id, due_at=timer.due_at,
                                          fired_at=timer.due_at.replace(year=2000))  # fmt: skip
                    before = p.runs[run]
                    p.apply(early)
                    assert p.runs[run] == before
                else:
                    p.fire(run)
        elif action[0] == "cancel" and runs:
            p.apply(cmd.CancelRun(run_id=runs[action[1] % len(runs)], requested_at=p.now))
        elif action[0] == "later":
            p.later(action[1])

    for run, events in p.log.items():
        assert [e.seq for e in events] == list(range(1, len(events) + 1))
        assert fold(None, events) == p.runs[run]
        assert fold(None, [ev.decode_event(e.to_json()) for e in events]) == p.runs[run]
        ends = [e for e in events if e.type in ev.TERMINAL_EVENT_TYPES]
        assert len(ends) <= 1
        assert not ends or events[-1] is ends[0]
        # Each wait ends once: by its event, its timeout, or the run's end; never two of them.
        waits = {e.timer_id: e for e in events if isinstance(e, ev.EventWaiting)}
        endings: Counter[uuid.UUID] = Counter()
        for e in events:
            if isinstance(e, ev.EventMatched) and e.cancelled_timer_id is not None:
                endings[e.cancelled_timer_id] += 1
            elif isinstance(e, ev.EventTimedOut):
                endings[e.timer_id] += 1
                assert e.fired_at >= waits[e.timer_id].due_at  # never early
            elif isinstance(e, ev.RunCancelled) and e.cancelled_timer_id in waits:
                endings[e.cancelled_timer_id] += 1
        pending = p.runs[run].pending_timer
        for timer_id in waits:
            still_waiting = pending is not None and pending.timer_id == timer_id
            assert endings[timer_id] + still_waiting == 1, (timer_id, endings)
        # No patient event is taken twice by one run.
        taken = [e.receipt_id for e in events if isinstance(e, ev.EventMatched)]
        assert len(taken) == len(set(taken))
    # One event starts at most one run of the journey.
    triggers = [p.log[r][0] for r in p.log if isinstance(p.log[r][0], ev.RunStarted)]
    ids = [t.trigger_event_id for t in triggers if t.trigger_event_id is not None]
    assert len(ids) == len(set(ids))
