"""The patient's guard: consent per channel and the frequency cap, in the pure core.

The cap's arithmetic is property-tested: whatever the times messages are asked for, following
the guard never lets more than `messages` out in any rolling window, a deferral's due time is
the first moment one may go, and every message the cap refuses really had a full window.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given as hypothesis_given
from hypothesis import strategies as st

from journeys_contracts import events as ev
from journeys_executor.core.decide import Policy
from journeys_executor.core.guard import FrequencyCap, Guard
from journeys_executor.core.quiet import QuietHours
from tests.unit.executor.helpers import (
    MSG_DELAY_MSG,
    T0,
    Run,
    journey,
    kinds,
    message,
    start,
)

T = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
caps = st.builds(
    FrequencyCap,
    messages=st.integers(1, 5),
    window_seconds=st.floats(1, 86_400, allow_nan=False),
)
gaps = st.lists(st.floats(0, 40_000, allow_nan=False), max_size=40)


def _follow(cap: FrequencyCap, offsets: list[float]) -> tuple[list[datetime], list[datetime]]:
    """Ask for a message at each offset (seconds, cumulative); send it when the guard allows.
    Returns (sent, refused) times."""
    guard, now, sent, refused = Guard(), T, [], []
    for gap in offsets:
        now += timedelta(seconds=gap)
        if guard.capped_until(now, cap) is None:
            guard = guard.with_sent(now, cap)
            sent.append(now)
        else:
            refused.append(now)
    return sent, refused


@hypothesis_given(caps, gaps)
def test_no_rolling_window_ever_holds_more_than_the_cap(
    cap: FrequencyCap, offs: list[float]
) -> None:
    sent, _ = _follow(cap, offs)
    for end in sent:
        inside = [t for t in sent if end - cap.window < t <= end]
        assert len(inside) <= cap.messages


@hypothesis_given(caps, gaps)
def test_a_refused_message_had_a_full_window(cap: FrequencyCap, offs: list[float]) -> None:
    sent, refused = _follow(cap, offs)
    for at in refused:
        assert len([t for t in sent if at - cap.window < t <= at]) >= cap.messages


@hypothesis_given(caps, gaps)
def test_the_due_time_is_the_first_moment_a_message_may_go(
    cap: FrequencyCap, offs: list[float]
) -> None:
    sent, _ = _follow(cap, offs)
    guard = Guard()
    for t in sent:
        guard = guard.with_sent(t, cap)
    now = sent[-1] if sent else T
    due = guard.capped_until(now, cap)
    if due is None:
        return
    assert due > now
    assert guard.capped_until(due, cap) is None
    assert guard.capped_until(due - timedelta(microseconds=1), cap) is not None


def test_the_guard_keeps_no_more_than_the_cap_needs() -> None:
    cap = FrequencyCap(2, 3600)
    guard = Guard()
    for minute in range(10):
        guard = guard.with_sent(T + timedelta(minutes=minute), cap)
    assert len(guard.sent) == 2
    assert Guard(sent=guard.sent).with_sent(T, None).sent == ()


def test_consent_is_revoked_and_granted_per_channel() -> None:
    guard = Guard().with_consent({"sms": False, "email": False})
    assert not guard.consents("sms")
    assert not guard.consents("email")
    assert guard.consents("webhook")
    guard = guard.with_consent({"sms": True})
    assert guard.consents("sms")
    assert not guard.consents("email")


def test_a_message_to_a_channel_without_consent_is_suppressed_and_the_run_goes_on() -> None:
    run = Run(guard=Guard().with_consent({"console": False}))
    outcome = run.when(start(MSG_DELAY_MSG), T0)
    assert kinds(outcome) == [
        "run.started", "node.entered", "message.suppressed", "node.entered", "delay.started"
    ]  # fmt: skip
    suppressed = run.last(ev.MessageSuppressed)
    assert (suppressed.node_id, suppressed.channel, suppressed.reason) == (
        "a",
        "console",
        "consent",
    )
    assert run.s.pending_message is None
    assert run.guard.sent == ()  # nothing went out, nothing counts


def test_consent_is_checked_against_the_channel_the_message_goes_by() -> None:
    sms_only = journey({**message("a"), "channel": "sms"})
    run = Run(guard=Guard().with_consent({"email": False}))
    assert kinds(run.when(start(sms_only), T0))[-1] == "message.requested"
    run = Run(guard=Guard().with_consent({"sms": False}))
    assert kinds(run.when(start(sms_only), T0))[-2:] == ["message.suppressed", "run.completed"]
    # The context's preferred channel, then the deployment's default.
    run = Run(guard=Guard().with_consent({"email": False}), policy=Policy(default_channel="sms"))
    assert kinds(run.when(start(MSG_DELAY_MSG, {"id": "p", "preferred_channel": "email"}), T0))[
        2
    ] == "message.suppressed"  # fmt: skip
    run = Run(guard=Guard().with_consent({"email": False}), policy=Policy(default_channel="sms"))
    assert kinds(run.when(start(MSG_DELAY_MSG), T0))[2] == "message.requested"
    assert run.last(ev.MessageRequested).channel == "sms"


def test_a_retry_after_consent_was_revoked_is_suppressed_not_sent() -> None:
    run = Run()
    run.when(start(MSG_DELAY_MSG), T0)
    run.deliver(ok=False, retry_after=60)
    run.guard = run.guard.with_consent({"console": False})  # STOP came while it waited
    assert kinds(run.fire()) == ["message.suppressed", "node.entered", "delay.started"]


def test_over_the_cap_a_message_is_suppressed_across_runs_and_a_retry_does_not_count() -> None:
    cap = FrequencyCap(2, 3600)
    guard = Guard()
    outcomes = []
    for n in range(3):
        run = Run(policy=Policy(cap=cap), guard=guard)
        run.when(start(journey(message("a"))), T0 + timedelta(minutes=n))
        if n == 0:  # a retry of the first message is the same message
            run.deliver(ok=False, retry_after=1)
            run.fire()
        outcomes.append(kinds(run.events)[2])
        guard = run.guard
    assert outcomes == ["message.requested", "message.requested", "message.suppressed"]
    assert len(guard.sent) == 2
    # Once the first leaves the window, a message may go again.
    run = Run(policy=Policy(cap=cap), guard=guard)
    run.when(start(journey(message("a"))), T0 + timedelta(hours=1))
    assert kinds(run.events)[2] == "message.requested"


def test_in_defer_mode_a_message_over_the_cap_waits_for_room_and_quiet_hours() -> None:
    cap = FrequencyCap(1, 3600, mode="defer")
    night = QuietHours.parse("21:00-08:00")
    first_at = datetime(2026, 12, 4, 20, 30, tzinfo=UTC)  # 20:30 UTC, the patient in UTC
    guard = Guard().with_sent(first_at, cap)
    run = Run(policy=Policy(cap=cap, quiet=night), guard=guard)
    run.when(start(journey(message("a"))), first_at + timedelta(minutes=5))
    deferred = run.last(ev.MessageDeferred)
    # Room at 21:30, inside quiet hours: 08:00 the next morning.
    assert deferred.reason == "frequency_cap"
    assert deferred.due_at == datetime(2026, 12, 5, 8, 0, tzinfo=UTC)
    assert run.guard.sent == guard.sent  # not sent yet: it does not count yet
    # Another message took the room meanwhile: deferred again, not sent past the cap.
    run.guard = run.guard.with_sent(deferred.due_at, cap)
    run.now = deferred.due_at
    assert kinds(run.fire()) == ["message.deferred"]
    again = run.last(ev.MessageDeferred)
    assert again.message_id == deferred.message_id
    assert again.due_at == deferred.due_at + timedelta(hours=1)
    run.now = again.due_at
    assert kinds(run.fire()) == ["message.requested"]
    assert run.last(ev.MessageRequested).message_id == deferred.message_id
    assert run.guard.sent[-1] == again.due_at
