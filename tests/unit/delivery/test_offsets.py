"""The committed offset never passes a record still in flight, whatever order records finish."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from journeys_delivery.offsets import PartitionOffsets


def test_nothing_to_commit_until_the_first_record_finishes() -> None:
    offsets = PartitionOffsets()
    for offset in (10, 11, 12):
        offsets.started(offset)
    offsets.finished(12)
    offsets.finished(11)
    assert offsets.committable() is None
    offsets.finished(10)
    assert offsets.committable() == 13
    assert offsets.in_flight == 0


@given(st.permutations(list(range(20))), st.integers(min_value=0, max_value=20))
def test_the_commit_is_one_past_the_finished_prefix(order: list[int], count: int) -> None:
    offsets = PartitionOffsets()
    for offset in range(20):
        offsets.started(100 + offset)
    finished = order[:count]
    for offset in finished:
        offsets.finished(100 + offset)
    prefix = 0
    while prefix in finished:
        prefix += 1
    assert offsets.committable() == (100 + prefix if prefix else None)
    assert offsets.in_flight == 20 - prefix
