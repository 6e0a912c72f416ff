"""Test-only crash points: a process kills itself at a named place inside a commit window.

`JOURNEYS_CRASH_AT=<point>@<n>` arms one point: the n-th time the process passes it (1 when
`@<n>` is left out), it sends itself SIGKILL, so nothing after that line runs, exactly as if
the machine had died there. Unarmed, `crash_point` is one comparison. The settings refuse
the variable when `JOURNEYS_ENV=production`.

Points: `executor.before_commit` (events sent and messages delivered, transaction open),
`executor.after_commit` (committed, in-memory table not yet updated),
`projector.before_commit` (rows written, PostgreSQL transaction open),
`projector.after_commit` (rows and offsets committed, Kafka offsets and NOTIFY not sent),
`scheduler.after_fire` (FireTimer acknowledged, timer row not yet deleted).
"""

from __future__ import annotations

import logging
import os
import signal

log = logging.getLogger(__name__)

POINTS = frozenset({
    "executor.before_commit", "executor.after_commit", "projector.before_commit",
    "projector.after_commit", "scheduler.after_fire",
})  # fmt: skip

_armed: tuple[str, int] | None = None
_passes = 0


def parse(spec: str) -> tuple[str, int]:
    point, _, nth = spec.partition("@")
    if point not in POINTS:
        raise ValueError(f"unknown crash point {point!r}; known: {', '.join(sorted(POINTS))}")
    count = int(nth) if nth else 1
    if count < 1:
        raise ValueError("the pass count after @ must be at least 1")
    return point, count


def arm(spec: str | None) -> None:
    global _armed, _passes
    _armed, _passes = (parse(spec) if spec else None), 0
    if _armed is not None:
        log.warning("crash point armed", extra={"point": _armed[0], "nth": _armed[1]})


def crash_point(name: str) -> None:
    global _passes
    if _armed is None or _armed[0] != name:
        return
    _passes += 1
    if _passes >= _armed[1]:
        log.warning("crash point reached: killing this process", extra={"point": name})
        os.kill(os.getpid(), signal.SIGKILL)
