"""The importer service: queued imports of clinic events, turned into patient events.

A process of its own (`python -m journeys_api.imports`), not a task of the API: an import is
CPU work row after row for minutes, and the API's answers must not wait behind it. It uses the
API's package and database (the uploads, and the patients' data keys it seals under) and
sends each event as `POST /events` does. Replicas share the queue through the ledger's leases;
one that dies has its import taken over once its lease runs out, at its last checkpoint.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool

from journeys_api.data_keys import PatientDataKeys
from journeys_api.imports.settings import ImporterSettings
from journeys_api.imports.worker import Importer
from journeys_api.publisher import Publisher
from journeys_contracts.keys import patient_key
from journeys_runtime.ops import OpsServer
from journeys_runtime.service import LoopService
from journeys_runtime.topics import Topics

log = logging.getLogger(__name__)


class ImporterService(LoopService):
    """`start()`, then `stop()` (or `run_until_stopped()`); safe to kill at any point: what
    was not checkpointed is imported again, and the executor takes each event once."""

    def __init__(self, settings: ImporterSettings) -> None:
        super().__init__()
        s = self.settings = settings
        self.topics = Topics(s.topic_prefix, s.retention)
        # The importer's loop, the parsing thread's cursor (a connection of its own) and a
        # key transaction held while a batch is on its way: a few connections.
        self.pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
            s.database_url, min_size=1, max_size=4, open=False, name="importer",
            kwargs={"autocommit": True, "connect_timeout": 5},
        )  # fmt: skip
        self.publisher = Publisher(
            s.kafka_bootstrap_servers, self.topics, s.partitions,
            create_topics=s.create_topics, timeout=s.produce_timeout_seconds,
        )  # fmt: skip
        self.data_keys = PatientDataKeys(self.pool, s.keyring)
        self._secret = s.patient_key_secret.get_secret_value()
        self.importer = Importer(self, self.pool, s)
        self.ops = OpsServer(s.ops_host, s.ops_port, self.ready)

    def patient_key(self, patient_id: str) -> str:
        return patient_key(self._secret, patient_id)

    async def _start(self) -> None:
        # Neither PostgreSQL nor Kafka has to be up to start: /ready tells, and the importer
        # waits for them.
        await self.pool.open(wait=False)
        await self.publisher.start()
        await self.ops.start()
        self._loop_task = asyncio.create_task(
            self.importer.run(self._stopping), name="importer-loop"
        )
        log.info("importer started", extra={"worker": self.importer.worker})

    async def _close(self) -> None:
        await self.ops.stop()
        await self.publisher.stop()
        await self.data_keys.let_go()
        await self.pool.close()
        log.info("importer stopped")

    async def ready(self) -> dict[str, bool]:
        kafka_ok = await self.publisher.ready(2.0)
        try:
            async with self.pool.connection(timeout=2.0) as conn:
                await conn.execute("SELECT 1")
            postgres = True
        except (psycopg.Error, TimeoutError):
            postgres = False
        return {"postgres": postgres, "kafka": kafka_ok, "importing": self.looping}
