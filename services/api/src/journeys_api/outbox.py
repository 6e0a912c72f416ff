"""Sending ErasePatient commands: from the request that asked, or later from the outbox loop.

A request stores its erasure before producing the command. If Kafka does not acknowledge it,
the client gets 503 and the row stays unpublished; every `API_ERASURE_OUTBOX_SECONDS` each
replica sends the rows still unpublished, so an erasure completes even when the client gave
up. The loop leaves alone rows younger than the answer timeout: their request may still be
sending them. Two senders of one erasure (two replicas, or a request and the loop) send it
once: each reads it again under the patient's lock (`Erasures.publish`). A command that still
reaches Kafka twice (a send that timed out arrived after all) is harmless: it carries the same
erasure id, and the second finds nothing left to erase.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable

from journeys_api.erasures import Erasure, Erasures
from journeys_contracts.commands import ErasePatient
from journeys_runtime.backoff import Backoff
from journeys_runtime.logs import describe_error

log = logging.getLogger(__name__)

BATCH = 100
RETRY_MAX_SECONDS = 60.0

Send = Callable[[str, ErasePatient, uuid.UUID, str], Awaitable[None]]


def command_of(erasure: Erasure) -> ErasePatient:
    return ErasePatient(
        erasure_id=erasure.erasure_id,
        patient_key=erasure.patient_key,
        requested_at=erasure.requested_at,
        run_ids=erasure.run_ids,
    )


def event_id_of(erasure: Erasure) -> str:
    """The same for every send of one erasure, so consumers can tell a repeat."""
    return str(uuid.uuid5(erasure.erasure_id, "command.erase_patient"))


async def publish(erasures: Erasures, send: Send, erasure: Erasure) -> None:
    """Produce the erasure's command, keyed by the patient key, and record it as published
    (`Erasures.publish`). Raises what the producer raised (`UnavailableError` when Kafka is
    away)."""
    await erasures.publish(erasure, producer(send))


def producer(send: Send) -> Callable[[Erasure], Awaitable[None]]:
    """What produces one erasure's command through `send`."""

    async def produce(erasure: Erasure) -> None:
        await send(
            erasure.patient_key, command_of(erasure), erasure.erasure_id, event_id_of(erasure)
        )

    return produce


class Outbox:
    """The loop: one pass per period; after a failed pass, backs off instead."""

    def __init__(
        self, erasures: Erasures, send: Send, *, period: float, min_age: float
    ) -> None:  # fmt: skip
        self._erasures = erasures
        self._send = send
        self._period = period
        self._min_age = min_age
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="erasure-outbox")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def drain(self) -> int:
        """Send every unpublished erasure old enough; how many were sent."""
        sent = 0
        while True:
            due = await self._erasures.unpublished(self._min_age, BATCH)
            for erasure in due:
                await publish(self._erasures, self._send, erasure)
                sent += 1
            if len(due) < BATCH:
                return sent

    async def _run(self) -> None:
        backoff = Backoff(initial=self._period, maximum=max(self._period, RETRY_MAX_SECONDS))
        while True:
            try:
                sent = await self.drain()
            except Exception as exc:  # Kafka or PostgreSQL away: the rows wait, unpublished
                log.warning("erasure outbox pass failed", extra={"error": describe_error(exc)})
                await backoff.wait()
                continue
            backoff.reset()
            if sent:
                log.info("erasure commands sent from the outbox", extra={"count": sent})
            await asyncio.sleep(self._period)
