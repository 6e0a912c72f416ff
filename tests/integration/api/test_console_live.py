"""The console's live pages against a real PostgreSQL: pages on one run share its watcher,
each gets a new event once, an ended run ends its pages, and a run nobody follows is dropped
(with none followed, the poller stops); a patient's conversation comes again whole when a
message, a report or a reply comes in, and only then."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime

import psycopg

from journeys_api.app import create_app
from journeys_api.console.live import Conversations, Timelines, Update
from journeys_contracts.keys import patient_key
from journeys_runtime.topics import Topics
from tests.integration.api.conftest import api_settings


def _run(conn: psycopg.Connection, status: str = "waiting_delay") -> uuid.UUID:
    run_id, now = uuid.uuid4(), datetime.now(UTC)
    conn.execute(
        "INSERT INTO runs (run_id, journey_id, patient_id, patient_key, status, "
        "patient_context, current_node_id, created_at, updated_at) "
        "VALUES (%s, %s, %s, %s, %s, '{}', 'wait', %s, %s)",
        (run_id, uuid.uuid4(), f"p-{run_id}", patient_key("s" * 32, str(run_id)), status, now,
         now),
    )  # fmt: skip
    _event(conn, run_id, 1, "journeys.run.started.v1")
    return run_id


def _event(conn: psycopg.Connection, run_id: uuid.UUID, seq: int, kind: str) -> None:
    conn.execute(
        "INSERT INTO run_events (run_id, seq, type, occurred_at, data) VALUES (%s, %s, %s, %s, %s)",
        (run_id, seq, kind, datetime.now(UTC), json.dumps({"nodeId": "wait"})),
    )


async def _next(queue: asyncio.Queue[Update]) -> Update:
    return await asyncio.wait_for(queue.get(), timeout=5)


async def test_pages_share_a_watcher_and_each_gets_each_event_once(
    kafka_bootstrap: str, read_models: str, topics: Topics
) -> None:
    app = create_app(api_settings(kafka_bootstrap, read_models, topics,
                                  console_stream_poll_seconds=0.05))  # fmt: skip
    with psycopg.connect(read_models, autocommit=True) as conn:
        first, second = _run(conn), _run(conn)
        async with app.router.lifespan_context(app):
            timelines: Timelines = app.state.console_timelines
            async with timelines.follow(first) as a, timelines.follow(first) as b, \
                    timelines.follow(second) as c:  # fmt: skip
                assert timelines.watched == 2  # three pages, two runs
                for queue in (a, b, c):  # each page's first update: the events so far
                    update = await _next(queue)
                    assert [e.seq for e in update.events] == [1]
                    assert (update.status, update.over) == ("waiting_delay", False)

                _event(conn, first, 2, "journeys.delay.elapsed.v1")
                for queue in (a, b):
                    update = await _next(queue)
                    assert [(e.seq, e.type) for e in update.events] == [
                        (2, "journeys.delay.elapsed.v1")
                    ]
                await asyncio.sleep(0.3)  # several polls: nothing new, nothing sent
                assert (a.empty(), b.empty(), c.empty()) == (True, True, True)

                _event(conn, first, 3, "journeys.run.completed.v1")
                conn.execute("UPDATE runs SET status = 'completed' WHERE run_id = %s", (first,))
                for queue in (a, b):
                    update = await _next(queue)
                    assert [e.seq for e in update.events] == [3]
                    assert (update.status, update.over) == ("completed", True)
                assert timelines.watched == 1  # the ended run's watcher is gone
                assert c.empty()
            assert timelines.watched == 0
            await asyncio.sleep(0.2)
            assert timelines._poller is not None
            assert timelines._poller.done()  # nobody follows anything: no polling


def _message(conn: psycopg.Connection, run_id: uuid.UUID, seq: int, kind: str, **data: str) -> None:
    conn.execute(
        "INSERT INTO run_events (run_id, seq, type, occurred_at, data) VALUES (%s, %s, %s, %s, %s)",
        (run_id, seq, f"journeys.message.{kind}.v1", datetime.now(UTC), json.dumps(
            {"nodeId": "ask", "messageId": str(uuid.uuid5(run_id, "ask")), **data})),
    )  # fmt: skip


async def test_a_conversation_is_handed_to_its_pages_when_a_message_or_reply_comes_in(
    kafka_bootstrap: str, read_models: str, topics: Topics
) -> None:
    app = create_app(api_settings(kafka_bootstrap, read_models, topics,
                                  console_stream_poll_seconds=0.05))  # fmt: skip
    with psycopg.connect(read_models, autocommit=True) as conn:
        run_id = _run(conn)
        key = conn.execute("SELECT patient_key FROM runs WHERE run_id = %s", (run_id,)).fetchone()
        assert key is not None
        _message(conn, run_id, 2, "requested", message="Any pain today?", channel="sms")
        async with app.router.lifespan_context(app):
            followed: Conversations = app.state.console_conversations
            async with followed.follow(key[0]) as a, followed.follow(key[0]) as b:
                assert followed.watched == 1
                for queue in (a, b):  # the first poll hands the conversation as it is
                    first = await asyncio.wait_for(queue.get(), timeout=5)
                    assert [(m.direction, m.text, m.status) for m in first.messages] == [
                        ("out", "Any pain today?", "requested")
                    ]

                _message(conn, run_id, 3, "sent", channel="sms")
                for queue in (a, b):
                    sent = await asyncio.wait_for(queue.get(), timeout=5)
                    assert [m.status for m in sent.messages] == ["sent"]

                conn.execute(
                    "INSERT INTO event_receipts (receipt_id, event_id, patient_key, event_type, "
                    "source, occurred_at, received_at, data) "
                    "VALUES (%s, 'sms:1', %s, 'message.replied', 'sms', now(), now(), %s)",
                    (uuid.uuid4(), key[0], json.dumps({"channel": "sms", "body": "A little"})),
                )  # fmt: skip
                replied = await asyncio.wait_for(a.get(), timeout=5)
                assert [(m.direction, m.text) for m in replied.messages] == [
                    ("out", "Any pain today?"), ("in", "A little")
                ]  # fmt: skip
                await asyncio.sleep(0.3)  # several polls: nothing new, nothing sent
                assert a.empty()
            assert followed.watched == 0
