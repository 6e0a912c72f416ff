"""The process's clients: the PostgreSQL pool, the Kafka producer, the projection waiter, the
patients' data keys and the erasure outbox."""

from __future__ import annotations

import asyncio
import logging
import time
from functools import partial
from typing import Any
from uuid import UUID

import orjson
import psycopg
from aiokafka.structs import RecordMetadata
from psycopg.types.json import set_json_loads
from psycopg_pool import AsyncConnectionPool

from journeys_api import deadline
from journeys_api.consistency import ProjectionWaiter
from journeys_api.data_keys import PatientDataKeys
from journeys_api.definitions import JourneyDefinitions
from journeys_api.erasures import Erasures
from journeys_api.metrics import (
    AUDIT_RECORDS,
    AUDIT_UNCONFIRMED,
    READ_YOUR_WRITES_SECONDS,
    READ_YOUR_WRITES_TIMEOUTS,
)
from journeys_api.outbox import Outbox
from journeys_api.publisher import Publisher, Record
from journeys_api.read_models import ReadModels
from journeys_api.settings import ApiSettings
from journeys_contracts.audit import AccessRecorded
from journeys_contracts.commands import ErasePatient
from journeys_contracts.keys import patient_key
from journeys_runtime.topics import Topics

log = logging.getLogger(__name__)

READY_TIMEOUT_SECONDS = 2.0
AUDIT_ENQUEUE_SECONDS = 1.0


async def _configure(conn: psycopg.AsyncConnection[Any]) -> None:
    await conn.set_autocommit(True)
    set_json_loads(orjson.loads, conn)


class Resources:
    """Built with the app, started by its lifespan; nothing here is touched by validation."""

    def __init__(self, settings: ApiSettings) -> None:
        self.settings = settings
        self.topics = Topics(settings.topic_prefix, settings.retention)
        self.pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
            settings.database_url,
            min_size=settings.db_pool_min_size,
            max_size=settings.db_pool_max_size,
            timeout=settings.db_pool_timeout_seconds,
            kwargs={"connect_timeout": settings.db_connect_timeout_seconds},
            configure=_configure,
            # No `check` on checkout: it cost a round trip per request. A connection broken
            # while idle fails its query (503 with Retry-After) and the pool drops it.
            open=False,
            name="api",
        )
        self.read_models = ReadModels(self.pool)
        self.journeys = JourneyDefinitions(self.read_models, settings.journey_cache_size)
        self.publisher = Publisher(
            settings.kafka_bootstrap_servers, self.topics, settings.partitions,
            create_topics=settings.create_topics, timeout=settings.produce_timeout_seconds,
        )  # fmt: skip
        self.waiter = ProjectionWaiter(
            settings.database_url,
            settings.read_your_writes_poll_seconds,
            settings.db_connect_timeout_seconds,
        )
        # Built once: the settings parse the key-encryption keys on every read of `keyring`.
        self.data_keys = PatientDataKeys(self.pool, settings.keyring)
        self.erasures = Erasures(self.pool)
        self.outbox = Outbox(
            self.erasures, self.send_erasure, period=settings.erasure_outbox_seconds,
            min_age=settings.answer_timeout_seconds,
        )  # fmt: skip

    def patient_key(self, patient_id: str) -> str:
        return patient_key(self.settings.patient_key_secret.get_secret_value(), patient_id)

    def patient_key_of(self, row: dict[str, Any]) -> str:
        """A read-model run row's patient key; a row from before the read model kept patient
        keys has only its patient id."""
        return row.get("patient_key") or self.patient_key(row["patient_id"])

    async def start(self) -> None:
        # Neither PostgreSQL nor Kafka has to be up for the API to start: /ready tells.
        await self.pool.open(wait=False)
        await self.waiter.start()
        await self.publisher.start()
        self.outbox.start()

    async def stop(self) -> None:
        await self.outbox.stop()
        await self.publisher.stop()
        await self.data_keys.let_go()
        await self.waiter.stop()
        await self.pool.close()

    async def publish(
        self, topic: str, key: str, record: Record, *, subject: UUID, event_id: str,
        wait: bool = True,
    ) -> RecordMetadata:  # fmt: skip
        """Produce `record`; with `wait`, return once the read models include it. Both waits
        are bounded, and cut short by the request's deadline (`deadline.py`)."""
        metadata = await self.publisher.send(
            topic, key, record, subject=str(subject), event_id=event_id,
            max_wait=deadline.allowed(self.settings.produce_timeout_seconds),
        )  # fmt: skip
        if wait:
            await self.wait_projected(topic, metadata, subject)
        return metadata

    async def wait_projected(self, topic: str, metadata: RecordMetadata, subject: UUID) -> None:
        """Return once the read models include the record at `metadata`, or the bounded wait
        is over (the record is in Kafka either way)."""
        kind = topic.removeprefix(self.topics.prefix)
        started = time.perf_counter()
        reached = await self.waiter.wait(
            topic, metadata.partition, metadata.offset,
            deadline.allowed(self.settings.read_your_writes_timeout_seconds),
        )  # fmt: skip
        READ_YOUR_WRITES_SECONDS.labels(kind).observe(time.perf_counter() - started)
        if not reached:
            READ_YOUR_WRITES_TIMEOUTS.labels(kind).inc()
            log.warning(
                "read-your-writes wait timed out; answering anyway, the record is in Kafka",
                extra={"topic": kind, "partition": metadata.partition,
                       "offset": metadata.offset, "subject": str(subject)},
            )  # fmt: skip

    async def send_erasure(
        self, key: str, command: ErasePatient, erasure_id: UUID, event_id: str
    ) -> None:
        """Produce an ErasePatient on the commands topic under the patient key, in order with
        the patient's other commands; nothing to wait for in the read models."""
        await self.publish(
            self.topics.commands, key, command, subject=erasure_id, event_id=event_id, wait=False
        )

    async def record_access(self, record: AccessRecorded, *, wait: bool = True) -> None:
        """With `wait`, return once the audit record is in Kafka (acks=all), else raise
        `UnavailableError`. Without, hand it to the producer and return: for answers that
        are 503s because Kafka is away, which disclose nothing and should not wait twice.

        No key: the records of one caller or patient need no order among themselves, and a
        key would be one more place an identifier could leak into."""
        audit_id = str(record.audit_id)
        if wait:
            await self.publisher.send(
                self.topics.audit, None, record, subject=audit_id, event_id=audit_id,
                max_wait=deadline.allowed_for_audit(self.settings.produce_timeout_seconds),
            )  # fmt: skip
            AUDIT_RECORDS.labels(record.outcome.value).inc()
            return
        sent = await self.publisher.enqueue(
            self.topics.audit, None, record, subject=audit_id, event_id=audit_id,
            max_wait=AUDIT_ENQUEUE_SECONDS,
        )  # fmt: skip
        if sent is None:
            AUDIT_UNCONFIRMED.inc()
        else:
            sent.add_done_callback(partial(_count_delivery, record.outcome.value))

    async def ready(self) -> dict[str, bool]:
        max_wait = min(READY_TIMEOUT_SECONDS, self.settings.db_pool_timeout_seconds)
        postgres, kafka = await asyncio.gather(
            self._postgres_ready(max_wait), self.publisher.ready(READY_TIMEOUT_SECONDS)
        )
        return {"postgres": postgres, "kafka": kafka}

    async def _postgres_ready(self, max_wait: float) -> bool:
        try:
            async with self.pool.connection(timeout=max_wait) as conn:
                await conn.execute("SELECT 1")
            return True
        except psycopg.Error:
            return False


def _count_delivery(outcome: str, sent: asyncio.Future[Any]) -> None:
    if sent.cancelled() or sent.exception() is not None:
        AUDIT_UNCONFIRMED.inc()
    else:
        AUDIT_RECORDS.labels(outcome).inc()
