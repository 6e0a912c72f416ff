"""Send FireTimer commands to the commands partition of the run, and learn which were acked."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from aiokafka.errors import KafkaError

from journeys_contracts.commands import FireTimer
from journeys_contracts.envelope import CloudEvent
from journeys_contracts.events import type_of
from journeys_scheduler.timers import Timer

log = logging.getLogger(__name__)

SOURCE = "/journeys/scheduler"
FIRE_TYPE = type_of(FireTimer)

# Failures of Kafka that callers retry.
KAFKA_ERRORS: tuple[type[BaseException], ...] = (KafkaError, OSError, asyncio.TimeoutError)


def fire_id(timer_id: uuid.UUID) -> str:
    """Every fire of one timer carries the same id, so a duplicate fire is recognisable."""
    return str(uuid.uuid5(timer_id, "fire"))


def fire_record(timer: Timer, fired_at: datetime) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    """(key, value, headers) of the FireTimer for `timer`."""
    command = FireTimer(
        run_id=timer.run_id, timer_id=timer.timer_id, due_at=timer.due_at, fired_at=fired_at
    )
    envelope = CloudEvent(
        id=fire_id(timer.timer_id), type=FIRE_TYPE, source=SOURCE,
        subject=str(timer.run_id), time=fired_at,
    )  # fmt: skip
    return timer.patient_key.encode(), command.to_json(), envelope.headers()


class FirePublisher:
    """Commands and events are co-partitioned (same count, same key; docs/architecture.md,
    Topics): the FireTimer goes to the commands partition numbered like the events partition
    that armed the timer (delay.started or event.waiting), under the same key, so it reaches
    the executor task that holds the run."""

    def __init__(self, producer: Any, topic: str) -> None:
        self._producer, self._topic = producer, topic

    async def fire(self, timers: Sequence[Timer], fired_at: datetime) -> list[Timer]:
        """Send every FireTimer, then wait for the acks (acks=all); returns those not acked."""
        pending: list[tuple[Timer, asyncio.Future[Any]]] = []
        failed: list[Timer] = []
        for timer in timers:
            key, value, headers = fire_record(timer, fired_at)
            try:
                future = await self._producer.send(
                    self._topic, value, key=key, partition=timer.partition, headers=headers
                )
            except KAFKA_ERRORS as exc:
                log.warning("FireTimer not sent", extra={"error": type(exc).__name__})
                failed.append(timer)
                continue
            pending.append((timer, future))
        results = await asyncio.gather(*(f for _, f in pending), return_exceptions=True)
        for (timer, _), result in zip(pending, results, strict=True):
            if isinstance(result, BaseException):
                log.warning("FireTimer not acknowledged", extra={"error": type(result).__name__})
                failed.append(timer)
        return failed
