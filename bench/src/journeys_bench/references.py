"""What the same machine does without our code: aiokafka and PostgreSQL at full speed, so
each figure above can be read against the limit under it."""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
from typing import Any

import psycopg
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from psycopg import sql

from journeys_bench.harness import Infra
from journeys_bench.load import producer

log = logging.getLogger(__name__)

RECORD_BYTES = 600  # about the size of one journey event


async def _kafka(infra: Infra, records: int) -> dict[str, Any]:
    topic = f"bench_reference_{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=infra.kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, infra.partitions, 1)])
        value = os.urandom(RECORD_BYTES // 2).hex().encode()
        keys = [uuid.uuid4().hex.encode() for _ in range(1000)]
        async with producer(infra.kafka_bootstrap, linger_ms=5) as p:
            started = time.monotonic()
            for chunk in range(0, records, 10_000):
                sends = [await p.send(topic, value, keys[i % 1000])
                         for i in range(chunk, min(chunk + 10_000, records))]  # fmt: skip
                await asyncio.gather(*sends)
            produce = time.monotonic() - started
        consumer = AIOKafkaConsumer(
            bootstrap_servers=infra.kafka_bootstrap, isolation_level="read_committed",
            max_poll_records=5000, enable_auto_commit=False,
        )  # fmt: skip
        await consumer.start()
        try:
            tps = [TopicPartition(topic, p) for p in range(infra.partitions)]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            started = time.monotonic()
            seen = 0
            while seen < records:
                batches = await consumer.getmany(timeout_ms=500)
                seen += sum(len(b) for b in batches.values())
            consume = time.monotonic() - started
        finally:
            await consumer.stop()
        await admin.delete_topics([topic])
    finally:
        await admin.close()
    return {
        "records": records,
        "record_bytes": RECORD_BYTES,
        "produce_per_s": round(records / produce, 1),
        "consume_per_s": round(records / consume, 1),
        "producer": "aiokafka, acks=all, idempotent, linger 5 ms",
    }


def _postgres(infra: Infra, rows: int) -> dict[str, Any]:
    """Rows shaped like `run_events`: by executemany (pipelined) and by COPY."""
    table = f"bench_reference_{uuid.uuid4().hex[:8]}"
    payload = '{"type": "journeys.message.sent.v1", "nodeId": "welcome", "channel": "console"}'
    data = [(uuid.uuid4(), i, "journeys.message.sent.v1", payload) for i in range(rows)]
    results = {}
    with psycopg.connect(infra.database_url, autocommit=True) as conn:
        ident = sql.Identifier(table)
        conn.execute(sql.SQL(
            "CREATE TABLE {} (run_id uuid, seq int, type text, payload jsonb, "
            "PRIMARY KEY (run_id, seq))").format(ident))  # fmt: skip
        try:
            insert = sql.SQL("INSERT INTO {} VALUES (%s, %s, %s, %s)").format(ident)
            started = time.monotonic()
            for chunk in range(0, rows, 5000):
                with conn.transaction(), conn.cursor() as cur:
                    cur.executemany(insert, data[chunk : chunk + 5000])
            results["executemany_rows_per_s"] = round(rows / (time.monotonic() - started), 1)
            conn.execute(sql.SQL("TRUNCATE {}").format(ident))
            started = time.monotonic()
            for chunk in range(0, rows, 5000):
                with (
                    conn.transaction(),
                    conn.cursor() as cur,
                    cur.copy(sql.SQL("COPY {} FROM STDIN").format(ident)) as copy,
                ):
                    for row in data[chunk : chunk + 5000]:
                        copy.write_row(row)
            results["copy_rows_per_s"] = round(rows / (time.monotonic() - started), 1)
        finally:
            conn.execute(sql.SQL("DROP TABLE {}").format(ident))
    return {"rows": rows, "batch": 5000, **results}


def references(infra: Infra, records: int, rows: int) -> dict[str, Any]:
    log.info("references: %d Kafka records, %d PostgreSQL rows", records, rows)
    return {"kafka": asyncio.run(_kafka(infra, records)), "postgres": _postgres(infra, rows)}
