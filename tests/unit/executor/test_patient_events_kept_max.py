"""`EXECUTOR_EVENTS_KEPT_MAX` bounds what a patient keeps for look-back, down to 0 (keep none),
which the setting allows."""

from __future__ import annotations

from journeys_executor.core import EventPolicy
from tests.unit.executor.patients import Partition
from tests.unit.executor.test_patient_events import INTAKE


def test_keeping_at_most_zero_events_keeps_none_so_no_wait_looks_back_to_one() -> None:
    p = Partition(policy=EventPolicy(keep_max=0))
    for n in range(3):
        assert p.event(f"ehr-{n}", "intake_form.submitted", {"score": 8})
    assert p.recent == ()
    p.later(60)
    run = p.start(INTAKE)
    assert p.runs[run].status == "waiting_event"


def test_keeping_at_most_one_event_keeps_the_newest() -> None:
    p = Partition(policy=EventPolicy(keep_max=1))
    for n in range(3):
        assert p.event(f"ehr-{n}", "intake_form.submitted", {"score": n})
    assert [e.event_id for e in p.recent] == ["ehr-2"]


def test_keeping_at_most_twenty_keeps_each_of_fewer_and_the_last_twenty_of_more() -> None:
    p = Partition(policy=EventPolicy(keep_max=20))
    for n in range(15):
        assert p.event(f"ehr-{n}", "intake_form.submitted", {"score": n})
    assert [e.event_id for e in p.recent] == [f"ehr-{n}" for n in range(15)]
    for n in range(15, 30):
        assert p.event(f"ehr-{n}", "intake_form.submitted", {"score": n})
    assert [e.event_id for e in p.recent] == [f"ehr-{n}" for n in range(10, 30)]
