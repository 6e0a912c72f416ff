"""Which offsets of a partition may be committed when records finish out of order.

Messages are sent concurrently and a slow provider must not hold the others back, so record
n+1 may finish before record n. The committed offset may only pass records that finished:
it is the first offset still in flight (or one past the last finished record)."""

from __future__ import annotations

from collections import deque


class PartitionOffsets:
    def __init__(self) -> None:
        self._order: deque[int] = deque()
        self._done: set[int] = set()
        self._next: int | None = None
        """One past the newest finished offset that every earlier one has also finished."""

    def started(self, offset: int) -> None:
        """Offsets start in the order they were read (increasing)."""
        self._order.append(offset)

    def finished(self, offset: int) -> None:
        self._done.add(offset)
        while self._order and self._order[0] in self._done:
            first = self._order.popleft()
            self._done.discard(first)
            self._next = first + 1

    @property
    def in_flight(self) -> int:
        return len(self._order)

    def committable(self) -> int | None:
        """The offset to commit (the next to read after a restart), or None when nothing new
        has finished since the partition was assigned."""
        return self._next
