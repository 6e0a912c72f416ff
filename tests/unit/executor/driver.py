"""A random, well-behaved outside world for the core: a channel, a scheduler, a canceller.

It feeds `decide` the start, then delivers every requested message (mostly successfully), fires
every pending timer at or after its due time, sometimes cancels, and throws in commands the
run must refuse. After every command it checks what must always hold.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from hypothesis import strategies as st

from journeys_contracts import commands as cmd
from journeys_contracts import events as ev
from journeys_contracts.definition import DelayNode, JourneyDefinition, MessageNode
from journeys_executor.core import Rejection, RunState, decide, evolve
from tests.unit.executor.helpers import T0, cancel, delivery, start, timer_fired

ACTIONS = ["progress"] * 16 + ["cancel"] + ["noise"] * 3
LATENESS_MS = [0, 0, 1, 250, 60_000, 86_400_000]


class Driver:
    def __init__(self, definition: JourneyDefinition, context: dict[str, Any],
                 data: st.DataObject) -> None:  # fmt: skip
        self.definition = definition
        self.context = context
        self.data = data
        self.state: RunState | None = None
        self.events: list[ev.Event] = []
        self.now = T0
        self.rejections = 0
        self.deliveries_in_a_row = 0
        self.seen_timers: list[cmd.FireTimer] = []
        self.seen_messages: list[uuid.UUID] = []
        self.max_events_per_command = 2 * len(definition.nodes) + 3
        self.message_nodes = sum(isinstance(n, MessageNode) for n in definition.nodes)

    @property
    def s(self) -> RunState:
        assert self.state is not None
        return self.state

    def run(self, max_commands: int = 40) -> None:
        assert self.apply(start(self.definition, self.context)), "the start was rejected"
        for _ in range(max_commands):
            if self.s.ended:
                break
            action = self.data.draw(st.sampled_from(ACTIONS), label="action")
            if action == "progress":
                self.progress()
            elif action == "cancel":
                assert self.apply(cancel("patient asked")), "an active run refused a cancel"
            else:
                self.noise()
        if self.s.ended:
            for command in self.stale_commands():
                assert not self.apply(command), f"an ended run accepted {command.type}"

    def progress(self) -> None:
        later = timedelta(milliseconds=self.data.draw(st.sampled_from(LATENESS_MS), label="ms"))
        if self.s.pending_message is not None:
            ok = self.data.draw(st.sampled_from([True] * 9 + [False]), label="delivered")
            self.deliveries_in_a_row += 1
            assert self.apply(delivery(self.s, ok, None if ok else "bounced"), self.now + later)
        else:
            fired = timer_fired(self.s, later)
            self.seen_timers.append(fired)
            self.deliveries_in_a_row = 0
            assert self.apply(fired, max(self.now, fired.fired_at)), "a due timer was refused"

    def noise(self) -> None:
        """A command the run must refuse: duplicate, stale, early or aimed at another wait."""
        choices = self.stale_commands()
        if self.s.pending_timer is not None:
            choices.append(timer_fired(self.s, late=-timedelta(milliseconds=1)))
        command = self.data.draw(st.sampled_from(choices), label="noise")
        assert not self.apply(command), f"accepted a stale {command.type}"

    def stale_commands(self) -> list[cmd.Command]:
        stale: list[cmd.Command] = [start(self.definition, self.context)]
        waiting_timer = self.s.pending_timer.timer_id if self.s.pending_timer else None
        stale += [t for t in self.seen_timers if t.timer_id != waiting_timer]
        awaited = self.s.pending_message.message_id if self.s.pending_message else None
        stale += [delivery(self.s, message_id=m) for m in self.seen_messages if m != awaited]
        stale.append(delivery(self.s, message_id=uuid.uuid4()))
        if self.s.ended:
            stale.append(cancel())
        return stale

    def apply(self, command: cmd.Command, now: datetime | None = None) -> bool:
        """Decide one command; True if accepted. Checks every invariant on the way."""
        self.now = now or self.now
        before = None if self.state is None else self.state.model_dump()
        outcome = decide(self.state, command, self.now)
        assert decide(self.state, command, self.now) == outcome, "decide is not deterministic"
        if isinstance(outcome, Rejection):
            assert outcome.reason.startswith("Expected "), outcome.reason
            assert (None if self.state is None else self.state.model_dump()) == before
            self.rejections += 1
            return False
        self.check_events(outcome)
        for event in outcome:
            self.state = evolve(self.state, event)
        self.events.extend(outcome)
        self.check_state(outcome)
        return True

    def check_events(self, events: list[ev.Event]) -> None:
        assert 1 <= len(events) <= self.max_events_per_command, [e.type for e in events]
        first_seq = 1 if self.state is None else self.state.seq + 1
        assert [e.seq for e in events] == list(range(first_seq, first_seq + len(events)))
        assert all(e.occurred_at == self.now for e in events)
        started = [isinstance(e, ev.RunStarted) for e in events]
        assert started == [self.state is None] + [False] * (len(events) - 1)
        terminal = [e.type in ev.TERMINAL_EVENT_TYPES for e in events]
        assert sum(terminal) <= 1
        assert not any(terminal) or terminal[-1], "a terminal event must come last"
        ids = {(e.run_id, e.journey_id, e.patient_id) for e in events}
        assert len(ids) == 1

    def check_state(self, events: list[ev.Event]) -> None:
        """Never stuck: a live run awaits exactly one thing, announced by the last event."""
        s, last = self.s, events[-1]
        assert (s.ended, s.pending_message is not None, s.pending_timer is not None).count(
            True
        ) == 1, "the run must end or await exactly one message or timer"
        assert (s.status == "waiting_delay") == (s.pending_timer is not None)
        if s.ended:
            assert last.type in ev.TERMINAL_EVENT_TYPES
        elif s.pending_message is not None:
            node = self.definition.node(s.pending_message.node_id)
            assert isinstance(last, ev.MessageRequested)
            assert isinstance(node, MessageNode)
            assert (s.current_node_id, s.pending_message.message) == (node.id, node.message)
            self.seen_messages.append(s.pending_message.message_id)
            # Between two timers the walk never revisits a message, so at most that many.
            assert self.deliveries_in_a_row < self.message_nodes
        else:
            assert s.pending_timer is not None
            node = self.definition.node(s.pending_timer.node_id)
            assert isinstance(last, ev.DelayStarted)
            assert isinstance(node, DelayNode)
            assert s.pending_timer.due_at == self.now + timedelta(seconds=node.duration_seconds)
