"""A stand-in projector for the API's tests: just enough rows, offsets and NOTIFY.

It projects JourneyDefined into `journeys` and StartRun into a `queued` run (a StartRunSealed
into a sealed one: no patient id, the sealed values as they came, the patient key), records
`projector_offsets.next_offset` and NOTIFYs `journeys_projected` in the same transaction,
like the real projector. Run states the API must react to (completed, events) are written
directly by the tests through `set_run` and `add_event`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg
from aiokafka import TopicPartition
from aiokafka.structs import ConsumerRecord

from journeys_contracts.commands import StartRun, StartRunSealed, decode_command
from journeys_contracts.journeys import decode_journey
from journeys_runtime.kafka import consumer
from journeys_runtime.topics import Topics
from tests.conftest import PARTITIONS


class SimulatedProjector:
    def __init__(self, bootstrap: str, database_url: str, topics: Topics) -> None:
        self.bootstrap, self.database_url, self.topics = bootstrap, database_url, topics

    async def run(self) -> None:
        c = consumer(self.bootstrap, None)
        await c.start()
        try:
            parts = [TopicPartition(topic, p)
                     for topic in (self.topics.definitions, self.topics.commands)
                     for p in range(PARTITIONS)]  # fmt: skip
            c.assign(parts)
            await c.seek_to_beginning(*parts)
            async with await psycopg.AsyncConnection.connect(self.database_url) as conn:
                while True:
                    batch = await c.getmany(timeout_ms=50)
                    if batch:
                        await self._project(conn, batch)
        finally:
            await c.stop()

    async def _project(
        self, conn: psycopg.AsyncConnection[Any], batch: dict[TopicPartition, list[ConsumerRecord]]
    ) -> None:
        async with conn.transaction():
            for tp, records in batch.items():
                for record in records:
                    await self._apply(conn, tp.topic, record.value)
                await conn.execute(
                    "INSERT INTO projector_offsets (topic, partition, next_offset) "
                    "VALUES (%s, %s, %s) ON CONFLICT (topic, partition) DO UPDATE "
                    "SET next_offset = excluded.next_offset",
                    (tp.topic, tp.partition, records[-1].offset + 1),
                )
            await conn.execute("NOTIFY journeys_projected")

    async def _apply(self, conn: psycopg.AsyncConnection[Any], topic: str, value: bytes) -> None:
        if topic == self.topics.definitions:
            journey = decode_journey(value)
            await conn.execute(
                "INSERT INTO journeys (journey_id, name, definition, created_at) "
                "VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
                (journey.journey_id, journey.definition.name,
                 journey.definition.model_dump_json(), journey.created_at),
            )  # fmt: skip
            return
        command = decode_command(value)
        if isinstance(command, StartRun):
            await conn.execute(
                "INSERT INTO runs (run_id, journey_id, patient_id, status, patient_context, "
                "created_at, updated_at) VALUES (%s, %s, %s, 'queued', %s, %s, %s) "
                "ON CONFLICT DO NOTHING",
                (command.run_id, command.journey_id, command.patient_id,
                 json.dumps(command.patient_context), command.requested_at,
                 command.requested_at),
            )  # fmt: skip
        elif isinstance(command, StartRunSealed):
            await conn.execute(
                "INSERT INTO runs (run_id, journey_id, patient_id, patient_key, "
                "patient_id_sealed, status, patient_context, created_at, updated_at) "
                "VALUES (%s, %s, NULL, %s, %s, 'queued', %s, %s, %s) ON CONFLICT DO NOTHING",
                (command.run_id, command.journey_id, command.patient_key,
                 command.patient_id.model_dump_json(), command.patient_context.model_dump_json(),
                 command.requested_at, command.requested_at),
            )  # fmt: skip


@contextlib.asynccontextmanager
async def simulated_projector(
    bootstrap: str, database_url: str, topics: Topics
) -> AsyncIterator[SimulatedProjector]:
    sim = SimulatedProjector(bootstrap, database_url, topics)
    task = asyncio.create_task(sim.run())
    try:
        yield sim
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def set_run(database_url: str, run_id: UUID | str, status: str, **fields: Any) -> None:
    """What the real projector would write after the executor's events."""
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        await conn.execute(
            "UPDATE runs SET status = %s, current_node_id = %s, error = %s, "
            "updated_at = now() WHERE run_id = %s",
            (status, fields.get("current_node_id"), fields.get("error"), run_id),
        )


async def add_event(
    database_url: str, run_id: UUID | str, seq: int, event_type: str, at: datetime,
    data: dict[str, Any],
) -> None:  # fmt: skip
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        await conn.execute(
            "INSERT INTO run_events (run_id, seq, type, occurred_at, data) "
            "VALUES (%s, %s, %s, %s, %s)",
            (run_id, seq, event_type, at, json.dumps(data)),
        )
