"""Run statuses: the one vocabulary the executor, the projector, the API and its clients share.

A run is `queued` from its acceptance until the executor starts it (only the read model ever
shows it), then `in_progress`, `waiting_delay` or `waiting_event` until it ends in one of the
`TERMINAL` ones.
"""

from __future__ import annotations

from typing import Final, Literal, get_args

# What a run the executor has started can be: everything but `queued`.
StartedStatus = Literal[
    "in_progress", "waiting_delay", "waiting_event", "completed", "failed", "cancelled"
]
RunStatus = Literal["queued", StartedStatus]

QUEUED: Final = "queued"
IN_PROGRESS: Final = "in_progress"
WAITING_DELAY: Final = "waiting_delay"
WAITING_EVENT: Final = "waiting_event"
COMPLETED: Final = "completed"
FAILED: Final = "failed"
CANCELLED: Final = "cancelled"

RUN_STATUSES: tuple[RunStatus, ...] = (QUEUED, *get_args(StartedStatus))
TERMINAL: frozenset[str] = frozenset({COMPLETED, FAILED, CANCELLED})
