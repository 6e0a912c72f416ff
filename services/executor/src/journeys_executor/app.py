"""The faust app: decode a command, load the run, process it, store the run, send its events.

Exactly once: the run table's changelog, the events and the consumed offset of a command all
belong to the Kafka transaction of the command's partition. faust routes a send to that
transaction only for topics the app consumes, so events are sent through the transactional
producer of the input partition explicitly (`_send_in_transaction`); commands and events
have the same partition count and key, so the event goes to the partition with the same
number as its command.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime
from typing import Any

import faust
from pydantic import ValidationError

from journeys_contracts.commands import Command, decode_command
from journeys_contracts.envelope import CloudEvent, event_id
from journeys_executor.channels import Channel, ConsoleChannel
from journeys_executor.core import RunState
from journeys_executor.metrics import COMMANDS, EVENTS, PROCESS_SECONDS
from journeys_executor.processing import process
from journeys_executor.settings import ExecutorSettings
from journeys_runtime.dlq import describe_validation_error, dlq_headers
from journeys_runtime.logs import run_id_var
from journeys_runtime.ops import OpsServer
from journeys_runtime.topics import Topics

log = logging.getLogger(__name__)

SOURCE = "/journeys/executor"


def _broker_urls(bootstrap: str) -> list[str]:
    return [f"kafka://{host.strip()}" for host in bootstrap.split(",") if host.strip()]


def create_app(settings: ExecutorSettings, channel: Channel | None = None) -> faust.App:
    topics = Topics(settings.topic_prefix)
    app = faust.App(
        f"{settings.topic_prefix}{settings.app_id}",
        broker=_broker_urls(settings.kafka_bootstrap_servers),
        store=settings.store,
        datadir=settings.data_dir,
        processing_guarantee="exactly_once",
        topic_partitions=settings.partitions,
        topic_allow_declare=True,
        broker_commit_interval=settings.commit_interval_seconds,
        broker_commit_every=1000,
        stream_buffer_maxsize=4096,
        web_enabled=False,
        key_serializer="raw",
        value_serializer="raw",
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        producer_linger=0.002,
        table_cleanup_interval=60.0,
        # A crashed replica's partitions move after this long; faust's default is 60 s.
        broker_session_timeout=settings.session_timeout_seconds,
        broker_heartbeat_interval=max(0.5, settings.session_timeout_seconds / 5),
    )
    deliver = channel or ConsoleChannel(settings.console_reveal_patient_data)
    commands_topic = app.topic(
        topics.commands, key_type=bytes, value_type=bytes, key_serializer="raw",
        value_serializer="raw", partitions=settings.partitions, internal=False,
    )  # fmt: skip
    runs = app.Table(
        "runs", default=None, key_type=bytes, value_type=bytes, partitions=settings.partitions
    )

    async def _send_in_transaction(
        topic: str, key: bytes | None, value: bytes, partition: int, headers: list[Any]
    ) -> None:
        transactions = app.consumer.transactions
        group = app.assignor.group_for_topic(topics.commands)
        transactional_id = f"{app.conf.id}-{group}-{partition}"
        await transactions.producer.send(
            topic, key, value, partition, None, headers, transactional_id=transactional_id
        )

    async def _dead_letter(message: Any, stage: str, error: str) -> None:
        headers = dlq_headers(
            list(message.headers or []), topic=message.topic, partition=message.partition,
            offset=message.offset, stage=stage, error=error,
        )  # fmt: skip
        await _send_in_transaction(
            topics.dlq, message.key, message.value, message.partition, headers
        )

    @app.agent(commands_topic, name="process-commands")
    async def process_commands(stream: Any) -> None:
        async for event in stream.events():
            message = event.message
            try:
                command: Command = decode_command(message.value)
            except (ValidationError, ValueError, UnicodeDecodeError) as exc:
                COMMANDS.labels(type="undecodable", outcome="dead_lettered").inc()
                await _dead_letter(message, "decode", describe_validation_error(exc))
                continue
            await _handle(message, command)

    async def _handle(message: Any, command: Command) -> None:
        run_key = str(command.run_id).encode()
        token = run_id_var.set(str(command.run_id))
        started = time.perf_counter()
        try:
            stored = runs.get(run_key)
            state = RunState.model_validate_json(stored) if stored else None
            outcome = await process(state, command, deliver, lambda: datetime.now(UTC))
            if outcome.rejection is not None:
                COMMANDS.labels(type=command.type, outcome="rejected").inc()
                log.info(
                    "command rejected",
                    extra={"command": command.type, "reason": outcome.rejection.reason},
                )
                return
            assert outcome.state is not None
            runs[run_key] = outcome.state.model_dump_json().encode()
            for e in outcome.events:
                envelope = CloudEvent(
                    id=event_id(e.run_id, e.seq), type=e.type, source=SOURCE,
                    subject=str(e.run_id), time=e.occurred_at,
                )  # fmt: skip
                await _send_in_transaction(
                    topics.events, message.key, e.to_json(), message.partition, envelope.headers()
                )
                EVENTS.labels(type=e.type).inc()
            COMMANDS.labels(type=command.type, outcome="applied").inc()
        finally:
            PROCESS_SECONDS.observe(time.perf_counter() - started)
            run_id_var.reset(token)

    ops = OpsServer(settings.ops_host, settings.ops_port, lambda: _ready(app))

    @app.task
    async def _serve_ops() -> None:
        await ops.start()
        try:
            await asyncio.Event().wait()
        finally:
            await ops.stop()

    return app


async def _ready(app: faust.App) -> dict[str, bool]:
    consumer_ok = app.consumer is not None and not app.rebalancing
    return {"kafka": bool(consumer_ok and app.consumer.assignment())}
