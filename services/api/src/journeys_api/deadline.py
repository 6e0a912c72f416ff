"""One deadline per request: every answer of an audited route (`/journeys`, `/patients`)
leaves within `API_ANSWER_TIMEOUT_SECONDS`, whatever it waited on.

A trigger can wait on Kafka for its command (`API_PRODUCE_TIMEOUT_SECONDS`), then on the
projector (`API_READ_YOUR_WRITES_TIMEOUT_SECONDS`), then on Kafka again for its audit
record. Each bound alone is short; in turn they added up to 25 s. The fault suite saw it:
a command acknowledged just before Kafka went away, 5 s of waiting for a projector cut off
from Kafka, 10 s for an audit record Kafka never took, and the client's 15 s timeout passed
first. So the route starts one deadline (`begin`), and each wait takes the smaller of its
own bound and the time left (`allowed`).

The last `AUDIT_RESERVE_SECONDS` belong to the audit record, which every answer needs: the
other waits stop short of them. The audit record always gets at least that reserve, so an
answer is late only when PostgreSQL steps (bounded by their own pool timeout, not by this
deadline) used the time up first.
"""

from __future__ import annotations

import time
from contextvars import ContextVar, Token

AUDIT_RESERVE_SECONDS = 2.0

_deadline: ContextVar[float | None] = ContextVar("answer_deadline", default=None)


def begin(seconds: float) -> Token[float | None]:
    """Start this request's deadline, `seconds` from now; `end(token)` when answered."""
    return _deadline.set(time.monotonic() + seconds)


def end(token: Token[float | None]) -> None:
    _deadline.reset(token)


def allowed(bound: float) -> float:
    """The wait allowed now, before the audit record's reserve: at most `bound`, at least 0.
    Outside a request with a deadline (startup, tests of one part), `bound` itself."""
    deadline = _deadline.get()
    if deadline is None:
        return bound
    return max(0.0, min(bound, deadline - AUDIT_RESERVE_SECONDS - time.monotonic()))


def allowed_for_audit(bound: float) -> float:
    """The audit record's wait: the time left, never less than the reserve, at most `bound`."""
    deadline = _deadline.get()
    if deadline is None:
        return bound
    return min(bound, max(AUDIT_RESERVE_SECONDS, deadline - time.monotonic()))
