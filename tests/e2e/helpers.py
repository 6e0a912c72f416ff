"""Given/when/then helpers for driving the running stack over HTTP and reading Kafka."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, ConsumerRecord

from journeys_contracts.envelope import header
from journeys_runtime.kafka import REQUEST_MAX_BYTES, consumer

TERMINAL = {"completed", "failed", "cancelled"}


def message_journey(name: str, *steps: dict[str, Any]) -> dict[str, Any]:
    """A linear journey of the given nodes, each pointing at the next."""
    nodes = []
    for i, step in enumerate(steps):
        node = {"id": f"n{i}", **step}
        if step["type"] != "CONDITIONAL":
            node["next_node_id"] = f"n{i + 1}" if i + 1 < len(steps) else None
        nodes.append(node)
    return {"name": name, "start_node_id": "n0", "nodes": nodes}


async def create_journey(client: httpx.AsyncClient, body: dict[str, Any]) -> str:
    response = await client.post("/journeys", json=body)
    assert response.status_code == 201, response.text
    return str(response.json()["journeyId"])


async def trigger(
    client: httpx.AsyncClient, journey_id: str, context: dict[str, Any], key: str | None = None
) -> str:
    headers = {"Idempotency-Key": key} if key else {}
    response = await client.post(f"/journeys/{journey_id}/trigger", json=context, headers=headers)
    assert response.status_code == 202, response.text
    return str(response.json()["runId"])


async def wait_for_status(
    client: httpx.AsyncClient, run_id: str, statuses: set[str], within: float = 30.0
) -> dict[str, Any]:
    deadline = time.monotonic() + within
    last: dict[str, Any] = {}
    while time.monotonic() < deadline:
        response = await client.get(f"/journeys/runs/{run_id}")
        assert response.status_code == 200, response.text
        last = response.json()
        if last["status"] in statuses:
            return last
        await asyncio.sleep(0.05)
    raise AssertionError(f"run {run_id} did not reach {statuses}; last seen {last}")


async def timeline(client: httpx.AsyncClient, run_id: str) -> list[dict[str, Any]]:
    response = await client.get(f"/journeys/runs/{run_id}/events")
    assert response.status_code == 200, response.text
    return list(response.json()["events"])


async def wait_for_type(
    client: httpx.AsyncClient, run_id: str, kind: str, within: float = 30.0
) -> list[dict[str, Any]]:
    """The run's timeline once it holds an event of `kind` (`message.sent`)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        events = await timeline(client, run_id)
        if kind in types(events):
            return events
        await asyncio.sleep(0.1)
    raise AssertionError(f"no {kind} in run {run_id}: {types(await timeline(client, run_id))}")


def assert_gapless(events: list[dict[str, Any]]) -> None:
    seqs = [e["seq"] for e in events]
    assert seqs == list(range(1, len(seqs) + 1)), f"seq not gapless: {seqs}"


def types(events: list[dict[str, Any]]) -> list[str]:
    return [e["type"].removeprefix("journeys.").removesuffix(".v1") for e in events]


async def read_all_events(bootstrap: str, topic: str, settle: float = 1.0) -> list[dict[str, Any]]:
    """Every committed run event on the topic (read_committed), as {runId, seq, type, raw}.
    Patient-level events (`patient.erased`: another test, or the fuzzer, erased someone on
    this shared stack) have no run and are left out."""
    import json

    c = consumer(bootstrap, None, [topic])
    await c.start()
    try:
        out: list[dict[str, Any]] = []
        quiet_since = time.monotonic()
        while time.monotonic() - quiet_since < settle:
            batch = await c.getmany(timeout_ms=200)
            for records in batch.values():
                for r in records:
                    data = json.loads(r.value)
                    if "runId" not in data:
                        continue
                    out.append({"runId": data["runId"], "seq": data["seq"], "data": data,
                                "type": header(r.headers, "ce_type")})  # fmt: skip
                quiet_since = time.monotonic()
        return out
    finally:
        await c.stop()


def duplicates(items: list[Any]) -> list[Any]:
    return [item for item, n in Counter(items).items() if n > 1]


async def read_to_end(
    bootstrap: str, topic: str, within: float = 30.0, *, committed: bool = True
) -> list[ConsumerRecord]:
    """Every committed record of every partition of `topic`, up to the end each had when read;
    with `committed=False` every record, aborted transactions' included (what a broker tool
    sees), up to the high watermark.

    Stops at the end offsets, not after a quiet spell, so a slow broker cannot cut it short.
    """
    isolation = "read_committed" if committed else "read_uncommitted"
    c = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
        isolation_level=isolation, auto_offset_reset="earliest",
        max_partition_fetch_bytes=REQUEST_MAX_BYTES,
    )  # fmt: skip
    await c.start()
    try:
        deadline = time.monotonic() + within
        while not c.assignment():  # without a group, every partition once metadata arrives
            assert time.monotonic() < deadline, f"no partitions of {topic} in {within} s"
            await asyncio.sleep(0.05)
        ends = await c.end_offsets(list(c.assignment()))
        out: list[ConsumerRecord] = []
        while not all([await c.position(tp) >= end for tp, end in ends.items()]):
            assert time.monotonic() < deadline, f"{topic} not read to its end in {within} s"
            for records in (await c.getmany(timeout_ms=200)).values():
                out.extend(records)
        return out
    finally:
        await c.stop()
