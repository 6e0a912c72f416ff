"""Messages to a team's chat (a Slack-compatible incoming webhook) that never hold up or fail
the import they report on.

`post` queues a message and returns at once; one task sends the queue in order. A message the
webhook does not take (a connection error, a timeout, 408, 429 or 5xx) is tried again with
exponential backoff and full jitter (tenacity), at least as long as a `Retry-After` asks, up to
`attempts` times, then dropped and counted; any other answer drops it at once. While a message
is being retried, newer progress messages replace older ones waiting behind it (only the
latest figures matter); the first and the last message of an import are never replaced.
`close` waits a bounded time for the queue to drain. The URL comes from the deployment's
settings only, never from a request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from prometheus_client import Counter
from tenacity import AsyncRetrying, RetryCallState, retry_if_result, stop_after_attempt
from tenacity import wait_random_exponential as full_jitter

log = logging.getLogger(__name__)

RETRYABLE = frozenset({408, 429})
MESSAGES = Counter(
    "journeys_importer_chat_messages_total", "Messages about imports to the team's chat, by "
    "outcome: delivered, given_up, replaced (by newer progress before it was sent)", ["outcome"],
)  # fmt: skip
FAILED_ATTEMPTS = Counter(
    "journeys_importer_chat_failed_attempts_total",
    "Attempts to send a chat message that failed (retried with backoff until given up)",
)


@dataclass
class Outbox:
    """What happened to the messages: each taken, given up (after its attempts or at once), or
    replaced by a newer progress message before it was sent; and the failed attempts."""

    delivered: int = 0
    given_up: int = 0
    replaced: int = 0
    failed_attempts: int = 0
    last_error: str | None = None


@dataclass
class _Message:
    body: dict[str, Any]
    replaceable: bool


@dataclass
class ChatNotifier:
    url: str
    timeout: float = 5.0
    attempts: int = 5
    initial_seconds: float = 0.5
    max_seconds: float = 30.0
    outbox: Outbox = field(default_factory=Outbox)

    def __post_init__(self) -> None:
        self._queue: deque[_Message] = deque()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._sending = False
        self._closing = False

    def post(self, body: dict[str, Any], *, replaceable: bool = False) -> None:
        """Queue `body`; a `replaceable` one (progress) replaces a replaceable one still
        waiting."""
        if self._queue and replaceable and self._queue[-1].replaceable:
            self._queue[-1] = _Message(body, replaceable)
            self.outbox.replaced += 1
            MESSAGES.labels("replaced").inc()
        else:
            self._queue.append(_Message(body, replaceable))
        if self._task is None:
            self._task = asyncio.create_task(self._send_all(), name="chat-notifier")
        self._wake.set()

    async def close(self, within: float) -> None:
        """Send what is queued, for at most `within` seconds; what is left is given up."""
        self._closing = True
        self._wake.set()
        if self._task is None:
            return
        try:
            async with asyncio.timeout(within):
                await asyncio.shield(self._task)
        except TimeoutError:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            left = len(self._queue) + self._sending
            self.outbox.given_up += left
            MESSAGES.labels("given_up").inc(left)
            self._queue.clear()

    async def _send_all(self) -> None:
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while True:
                if not self._queue:
                    if self._closing:
                        return
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                message = self._queue.popleft()
                self._sending = True
                taken = await self._send(session, message.body)
                self._sending = False
                if taken:
                    self.outbox.delivered += 1
                else:
                    self.outbox.given_up += 1
                MESSAGES.labels("delivered" if taken else "given_up").inc()

    async def _send(self, session: aiohttp.ClientSession, body: dict[str, Any]) -> bool:
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.attempts),
            wait=self._wait,
            retry=retry_if_result(lambda answer: answer[0] == "again"),
            retry_error_callback=lambda state: ("given up", None),
        )
        answer: tuple[str, float | None] = await retrying(self._attempt, session, body)
        return answer[0] == "taken"

    def _wait(self, state: RetryCallState) -> float:
        backoff = full_jitter(multiplier=self.initial_seconds, max=self.max_seconds)(state)
        outcome = state.outcome.result() if state.outcome is not None else None
        retry_after = outcome[1] if outcome else None
        return max(backoff, min(retry_after or 0.0, self.max_seconds))

    async def _attempt(
        self, session: aiohttp.ClientSession, body: dict[str, Any]
    ) -> tuple[str, float | None]:
        """("taken" | "again" | "refused", Retry-After seconds)."""
        try:
            async with session.post(self.url, json=body, allow_redirects=False) as response:
                await response.read()
                status, retry_after = response.status, response.headers.get("Retry-After")
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            self._failed(type(exc).__name__)
            return "again", None
        if 200 <= status < 300:
            return "taken", None
        self._failed(f"answered {status}")
        if status in RETRYABLE or status >= 500:
            return "again", _seconds(retry_after)
        return "refused", None

    def _failed(self, error: str) -> None:
        self.outbox.failed_attempts += 1
        self.outbox.last_error = error
        FAILED_ATTEMPTS.inc()
        log.warning("chat webhook did not take a message", extra={"error": error})


def _seconds(retry_after: str | None) -> float | None:
    try:
        return max(0.0, float(retry_after)) if retry_after else None
    except ValueError:
        return None
