"""A patient's protections against messages: consent per channel, and a frequency cap.

Both are checked by `decide` before every message goes out, in the patient's partition, so no
two runs of the patient race past them: every command of the patient is decided there, one at
a time, with the guard as the commands before it left it.

- **Consent** is kept as the channels the patient has revoked: every channel has consent
  until a `SetConsent` revokes it (an operator through the API; the patient's own STOP by SMS
  is to come the same way), and has it again once one grants it.
- **The frequency cap**: at most `messages` messages per patient in any rolling window of
  `window_seconds`, across every journey and channel. A message counts once, when it is first
  asked for; a retry of it is the same message. Over the cap, a message is suppressed, or
  deferred until the oldest message in the window leaves it (`mode`).

Pure: the guard is a value, and the adapters keep it in the changelog beside the patient's
runs. It holds no patient data: channel names and times.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Literal

from journeys_contracts import events as ev
from journeys_contracts.definition import ChannelName

CapMode = Literal["suppress", "defer"]


@dataclass(frozen=True)
class FrequencyCap:
    messages: int
    """At most this many messages (at least 1)."""
    window_seconds: float
    """In any rolling window this long."""
    mode: CapMode = "suppress"
    """What becomes of a message over the cap: `suppress` (never sent) or `defer` (sent once
    the window has room, quiet hours permitting)."""

    def __post_init__(self) -> None:
        if self.messages < 1 or self.window_seconds <= 0:
            raise ValueError("a frequency cap needs messages >= 1 and window_seconds > 0")

    @property
    def window(self) -> timedelta:
        return timedelta(seconds=self.window_seconds)


@dataclass(frozen=True)
class Guard:
    revoked: frozenset[str] = field(default_factory=frozenset)
    """The channels the patient has revoked consent to."""
    sent: tuple[datetime, ...] = ()
    """When the patient's latest messages were first asked for, oldest first: no more than the
    cap needs (the last `messages`, inside the window)."""

    def consents(self, channel: str) -> bool:
        return channel not in self.revoked

    def with_consent(self, channels: Mapping[ChannelName, bool]) -> Guard:
        """Each channel named granted (true) or revoked (false); the others as they were."""
        revoked = {c for c in self.revoked if c not in channels}
        revoked.update(c for c, granted in channels.items() if not granted)
        return replace(self, revoked=frozenset(revoked))

    def capped_until(self, now: datetime, cap: FrequencyCap | None) -> datetime | None:
        """None if a message may go out at `now`; else the first moment it may, if nothing else
        is sent before: when the oldest of the last `messages` leaves the window.

        A message at `t` is over the cap when `messages` or more were sent in `(t - window, t]`.
        """
        if cap is None:
            return None
        inside = self._inside(now, cap)
        if len(inside) < cap.messages:
            return None
        return inside[-cap.messages] + cap.window

    def with_sent(self, at: datetime, cap: FrequencyCap | None) -> Guard:
        """A message first asked for at `at` (nothing is kept without a cap)."""
        if cap is None:
            return self if not self.sent else replace(self, sent=())
        kept = (*self._inside(at, cap), at)
        return replace(self, sent=kept[-cap.messages :])

    def after(
        self, events: Iterable[ev.RunEvent], now: datetime, cap: FrequencyCap | None
    ) -> Guard:
        """The guard once `events` (decided at `now`) are recorded: each message asked for the
        first time counts against the cap. A retry (`attempt` 2 on) is the same message."""
        guard = self
        for event in events:
            if isinstance(event, ev.MessageRequested) and event.attempt is None:
                guard = guard.with_sent(now, cap)
        return guard

    def _inside(self, now: datetime, cap: FrequencyCap) -> tuple[datetime, ...]:
        since = now - cap.window
        # A time after `now` (another replica's clock ran ahead) still counts.
        return tuple(t for t in self.sent if since < t)


NO_GUARD = Guard()
