"""The delivery service: reads delivery requests, sends each by its channel, and reports the
outcome to the executor as a `RecordDelivery` command.

Each message is sent and reported on its own, so one slow or hanging provider holds back only
its own messages. At least once, by construction: a partition's offset is committed only past
messages whose reports are acked (acks=all). A crash before that sends them again, with the
same message ids, which every channel passes as the provider's idempotency key; the executor
applies one report per message and rejects the repeats.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import (
    KafkaError,
    MessageSizeTooLargeError,
    TopicAuthorizationFailedError,
)
from aiokafka.structs import ConsumerRecord
from pydantic import ValidationError

from journeys_contracts.commands import RecordDelivery
from journeys_contracts.deliveries import (
    DeliveryRequested,
    DeliveryRequestedSealed,
    decode_delivery,
)
from journeys_contracts.envelope import CloudEvent
from journeys_contracts.events import type_of
from journeys_contracts.keys import recipient_key
from journeys_contracts.wire import UnknownRecordType
from journeys_delivery.channels import Channel, Failed, Outcome, Sent
from journeys_delivery.channels.console import ConsoleChannel
from journeys_delivery.channels.email import EmailChannel
from journeys_delivery.channels.limits import limited
from journeys_delivery.channels.sms import SmsChannel
from journeys_delivery.channels.webhook import WebhookChannel
from journeys_delivery.metrics import MESSAGES, RECORDS, SEND_SECONDS, TRIMMED
from journeys_delivery.offsets import PartitionOffsets
from journeys_delivery.settings import DeliverySettings
from journeys_runtime import kafka
from journeys_runtime.backoff import StoppedError, retrying
from journeys_runtime.dlq import (
    DATA_KEY_FIELD,
    STRIPPED_HEADER,
    describe_validation_error,
    dlq_headers,
    without_data_key,
)
from journeys_runtime.keyring import DataKeys
from journeys_runtime.logs import describe_error, log_unhandled
from journeys_runtime.ops import OpsServer
from journeys_runtime.sealing import from_wire, open_delivery
from journeys_runtime.service import STOP_GRACE_SECONDS, LoopService
from journeys_runtime.topics import Topics, ensure_topics
from journeys_runtime.trimming import Trimmer

log = logging.getLogger(__name__)

SOURCE = "/journeys/delivery"
KAFKA_ERRORS = (KafkaError, OSError, asyncio.TimeoutError)
# Errors the same report would meet again: no use retrying them.
FATAL_KAFKA_ERRORS = (MessageSizeTooLargeError, TopicAuthorizationFailedError)
RETRY_MAX_SECONDS = 5.0
REPORT_TYPE = type_of(RecordDelivery)

Send = tuple[str, bytes | None, bytes, list[tuple[str, bytes]], int | None]
"""A record to produce: topic, key, value, headers, partition."""


def channels_of(settings: DeliverySettings) -> dict[str, Channel]:
    """The channels this deployment has configured; a message for another one fails, reported
    with the reason, instead of going nowhere."""
    channels: dict[str, Channel] = {"console": ConsoleChannel(settings.console_reveal_patient_data)}
    if settings.webhook_url is not None and settings.webhook_secret is not None:
        channels["webhook"] = limited(WebhookChannel(
            settings.webhook_url, settings.webhook_secret.get_secret_value(),
            settings.webhook_timeout_seconds, settings.webhook_concurrency,
        ), settings.webhook_rate_per_second)  # fmt: skip
    if (
        settings.sms_url is not None and settings.sms_account_sid is not None
        and settings.sms_auth_token is not None and settings.sms_from is not None
    ):  # fmt: skip
        channels["sms"] = limited(SmsChannel(
            settings.sms_url, settings.sms_account_sid,
            settings.sms_auth_token.get_secret_value(), settings.sms_from,
            settings.sms_timeout_seconds, settings.sms_concurrency,
        ), settings.sms_rate_per_second)  # fmt: skip
    if settings.smtp_host is not None and settings.smtp_from is not None:
        password = settings.smtp_password
        channels["email"] = limited(EmailChannel(
            settings.smtp_host, settings.smtp_port, settings.smtp_from,
            username=settings.smtp_username,
            password=password.get_secret_value() if password is not None else None,
            starttls=settings.smtp_starttls, ca_file=settings.smtp_ca_file,
            timeout=settings.smtp_timeout_seconds, concurrency=settings.smtp_concurrency,
        ), settings.email_rate_per_second)  # fmt: skip
    return channels


def report_id(message_id: uuid.UUID, attempt: int) -> str:
    """The `ce_id` of the report of one send: a repeat after a crash keeps it."""
    return str(uuid.uuid5(message_id, f"outcome:{attempt}"))


class DeliveryService(LoopService, ConsumerRebalanceListener):
    def __init__(
        self, settings: DeliverySettings, channels: Mapping[str, Channel] | None = None
    ) -> None:
        super().__init__()
        self.settings = settings
        self.topics = Topics(settings.topic_prefix, settings.retention)
        self.group_id = f"{settings.topic_prefix}{settings.group_id}"
        self.channels = dict(channels) if channels is not None else channels_of(settings)
        self.data_keys = DataKeys(settings.keyring)
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None
        self._crashed: BaseException | None = None
        self._offsets: dict[TopicPartition, PartitionOffsets] = {}
        self._committed: dict[TopicPartition, int] = {}
        self._tasks: dict[TopicPartition, set[asyncio.Task[None]]] = {}
        self.ops = OpsServer(settings.ops_host, settings.ops_port, self.ready)
        # Sent requests are only copies, and a sealed one holds a wrapped data key: they leave
        # the topic within a few seconds of their report, not at the end of its retention.
        self.trimmer = Trimmer(
            settings.kafka_bootstrap_servers, [self.group_id], settings.trim_seconds,
            lambda: self._consumer.assignment() if self._consumer is not None else set(),
            TRIMMED.inc,
        )  # fmt: skip
        self._trim_task: asyncio.Task[None] | None = None

    async def ready(self) -> dict[str, bool]:
        consumer = self._consumer
        return {
            "kafka": consumer is not None and bool(consumer.assignment()),
            "processing": self.looping,
        }

    async def _start(self) -> None:
        asyncio.get_running_loop().set_exception_handler(log_unhandled)
        s = self.settings
        await self.ops.start()
        await ensure_topics(
            s.kafka_bootstrap_servers, self.topics, s.partitions, create=s.create_topics
        )
        self._producer = kafka.producer(s.kafka_bootstrap_servers)
        await self._producer.start()
        self._consumer = kafka.consumer(
            s.kafka_bootstrap_servers, self.group_id, max_poll_records=s.batch_max_records,
            # Longer than a revoke may wait for its messages in flight, so waiting for them
            # never costs this member its place in the group.
            rebalance_timeout_ms=int((s.revoke_grace_seconds + 15) * 1000),
        )  # fmt: skip
        self._consumer.subscribe([self.topics.deliveries], listener=self)
        await self._consumer.start()
        self._loop_task = asyncio.create_task(self._run())
        if s.trim_seconds > 0:
            self._trim_task = asyncio.create_task(self.trimmer.run(self._stopping))

    async def _close(self) -> None:
        if self._trim_task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._trim_task, 5)
        if self._consumer is not None and self._offsets:
            with contextlib.suppress(Exception):  # a commit that fails now is redone on restart
                await self._finish(set(self._offsets), STOP_GRACE_SECONDS)
        for closing in (self._consumer, self._producer):
            if closing is not None:
                await closing.stop()
        for channel in self.channels.values():
            await channel.close()
        await self.ops.stop()

    async def _run(self) -> None:
        assert self._consumer is not None
        while not self._stopping.is_set():
            batch = await self._consumer.getmany(
                timeout_ms=self.settings.poll_timeout_ms,
                max_records=self.settings.batch_max_records,
            )
            for tp, records in batch.items():
                offsets = self._offsets.setdefault(tp, PartitionOffsets())
                for record in records:
                    offsets.started(record.offset)
                    task = asyncio.create_task(self._complete(tp, record))
                    self._tasks.setdefault(tp, set()).add(task)
                    task.add_done_callback(self._tasks[tp].discard)
                if offsets.in_flight >= self.settings.max_in_flight_per_partition:
                    self._consumer.pause(tp)
            await self._commit()
            if self._crashed is not None:
                raise self._crashed

    async def _complete(self, tp: TopicPartition, record: ConsumerRecord) -> None:
        """Send one message and produce its report; the offset counts as finished once the
        report is acked. While Kafka is away the report is retried (the message is not sent
        again); a stop abandons it unacked, so the next owner sends the message again."""
        try:
            sends = await self._handle(record)
        except Exception as exc:  # a bug: stop, so a restart takes the message up again
            log.critical("delivery request not handled", extra={"error": describe_error(exc)})
            self._crashed = self._crashed or exc
            return
        try:
            try:
                await self._produce(sends)
            except KAFKA_ERRORS:  # the slow path, with backoff, only once Kafka has failed
                await retrying(
                    lambda: self._produce(sends), what="delivery report",
                    retry_on=KAFKA_ERRORS, fatal=FATAL_KAFKA_ERRORS, stopping=self._stopping,
                    max_delay=RETRY_MAX_SECONDS,
                )  # fmt: skip
        except StoppedError:
            return
        except Exception as exc:  # a report Kafka will never take, or a bug: stop, restart
            log.critical("delivery report not produced", extra={"error": describe_error(exc)})
            self._crashed = self._crashed or exc
            return
        offsets = self._offsets.get(tp)
        if offsets is not None:  # else revoked meanwhile: the next owner sends it again
            offsets.finished(record.offset)

    async def _produce(self, sends: list[Send]) -> None:
        assert self._producer is not None
        acks = [await self._producer.send(topic, value, key=key, headers=headers,
                                          partition=partition)
                for topic, key, value, headers, partition in sends]  # fmt: skip
        await asyncio.gather(*acks)

    async def _commit(self, only: set[TopicPartition] | None = None) -> None:
        """Commit, for each partition, the offsets every earlier record of which is finished;
        resume a partition paused for too many messages in flight once it has room again."""
        assert self._consumer is not None
        assigned = self._consumer.assignment()
        due: dict[TopicPartition, int] = {}
        for tp, offsets in self._offsets.items():
            if only is not None and tp not in only:
                continue
            position = offsets.committable()
            if position is not None and position != self._committed.get(tp):
                due[tp] = position
            if tp in assigned and offsets.in_flight < self.settings.max_in_flight_per_partition:
                self._consumer.resume(tp)
        if not due:
            return
        try:
            await self._consumer.commit(due)
        except KAFKA_ERRORS as exc:  # Kafka away, or a rebalance: the next round commits
            log.warning("commit failed; trying again", extra={"error": describe_error(exc)})
            return
        self._committed.update(due)

    async def _finish(self, partitions: set[TopicPartition], grace: float) -> None:
        """Let the messages of `partitions` in flight finish (bounded), commit what did, and
        forget the partitions: revoked, or the service is stopping."""
        tasks = {t for tp in partitions for t in self._tasks.get(tp, ())}
        if tasks:
            await asyncio.wait(tasks, timeout=grace)
        try:
            await self._commit(only=partitions)
        finally:
            for tp in partitions:
                for task in self._tasks.pop(tp, set()):
                    task.cancel()  # not acked: the next owner sends it again, same message id
                self._offsets.pop(tp, None)
                self._committed.pop(tp, None)

    # Rebalance listener: awaited by the consumer before the partitions move.

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self._finish(set(revoked), self.settings.revoke_grace_seconds)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        pass

    async def _handle(self, record: ConsumerRecord) -> list[Send]:
        try:
            request = decode_delivery(record.value or b"")
        except UnknownRecordType as exc:
            # Written by a newer executor: skipped and counted, never dead-lettered.
            RECORDS.labels(outcome="unknown_type").inc()
            log.warning("delivery request of an unknown type", extra={"type": exc.record_type})
            return []
        except (ValidationError, ValueError) as exc:
            parked = self._dead_letter(record, "decode", describe_validation_error(exc))
            return [*self._poison_report(record, "delivery request unreadable"), parked]
        if isinstance(request, DeliveryRequestedSealed):
            try:
                key = self.data_keys.open(request.patient_key, from_wire(request.data_key))
                request = open_delivery(request, key)
            except Exception as exc:  # poison: a key or a field that does not open
                parked = self._dead_letter(record, "unseal", describe_error(exc))
                return [*self._poison_report(record, "delivery request did not open"), parked]
        RECORDS.labels(outcome="handled").inc()
        name, outcome = await self._send(request)
        retry_after = None
        if isinstance(outcome, Failed) and not outcome.permanent:
            retry_after = self.settings.retry_policy(name).delay(
                request.attempt, outcome.retry_after
            )
        sends = [self._report(record, request, name, outcome, retry_after)]
        if isinstance(outcome, Failed) and retry_after is None:
            # Given up: parked in the dead-letter topic, where operators see it, with why.
            RECORDS.labels(outcome="given_up").inc()
            sends.append(self._dead_letter(record, "delivery", outcome.reason, counted=False))
        return sends

    async def _send(self, request: DeliveryRequested) -> tuple[str, Outcome]:
        name = request.channel or self.settings.default_channel
        channel = self.channels.get(name)
        if channel is None:
            outcome: Outcome = Failed(reason=f"channel {name} is not configured", permanent=True)
        else:
            started = time.perf_counter()
            try:
                outcome = await channel.send(request)
            except Exception as exc:  # a channel should answer, not raise
                # Only the type: the error's text may quote the patient or the message.
                log.warning("channel raised", extra={"channel": name, "error": type(exc).__name__})
                outcome = Failed(reason=f"channel error: {type(exc).__name__}", permanent=False)
            SEND_SECONDS.labels(channel=name).observe(time.perf_counter() - started)
        MESSAGES.labels(
            channel=name, outcome="sent" if isinstance(outcome, Sent) else "failed"
        ).inc()
        return name, outcome

    def _report(
        self,
        record: ConsumerRecord,
        request: DeliveryRequested,
        channel: str,
        outcome: Outcome,
        retry_after: float | None,
    ) -> Send:
        """The outcome as the run's command: sent; failed, with another attempt
        `retry_after` seconds from now; or failed for good (`retry_after` None)."""
        now = datetime.now(UTC)
        delivered = isinstance(outcome, Sent)
        recipient = None
        if delivered and channel == "sms" and request.phone:  # a reply from it finds the patient
            secret = self.settings.patient_key_secret.get_secret_value()
            recipient = recipient_key(secret, "sms", request.phone)
        command = RecordDelivery(
            run_id=request.run_id, message_id=request.message_id, channel=channel,
            delivered=delivered, reason=outcome.reason if isinstance(outcome, Failed) else None,
            at=now, attempt=request.attempt, retry_after_seconds=retry_after,
            recipient_key=recipient,
        )  # fmt: skip
        envelope = CloudEvent(
            id=report_id(request.message_id, request.attempt), type=REPORT_TYPE, source=SOURCE,
            subject=str(request.run_id), time=now,
        )  # fmt: skip
        # The commands partition numbered like the request's: the executor task of the run.
        return (self.topics.commands, record.key, command.to_json(), envelope.headers(),
                record.partition)  # fmt: skip

    def _poison_report(self, record: ConsumerRecord, reason: str) -> list[Send]:
        """A final failure for a request that cannot be sent, when its ids can still be read,
        so its run goes on instead of waiting at the node for ever."""
        try:
            data = json.loads(record.value or b"")
            ids = (uuid.UUID(data["runId"]), uuid.UUID(data["messageId"]))
            attempt = int(data.get("attempt", 1))
        except (ValueError, TypeError, KeyError, AttributeError):
            return []
        now = datetime.now(UTC)
        command = RecordDelivery(run_id=ids[0], message_id=ids[1], channel="unknown",
                                 delivered=False, reason=reason, at=now,
                                 attempt=max(attempt, 1))  # fmt: skip
        envelope = CloudEvent(id=report_id(ids[1], max(attempt, 1)), type=REPORT_TYPE,
                              source=SOURCE, subject=str(ids[0]), time=now)  # fmt: skip
        return [(self.topics.commands, record.key, command.to_json(), envelope.headers(),
                 record.partition)]  # fmt: skip

    def _dead_letter(
        self, record: ConsumerRecord, stage: str, error: str, *, counted: bool = True
    ) -> Send:
        if counted:
            RECORDS.labels(outcome="dead_lettered").inc()
        headers = dlq_headers(
            list(record.headers or []), topic=record.topic, partition=record.partition,
            offset=record.offset, stage=stage, error=error,
        )  # fmt: skip
        value, stripped = without_data_key(record.value)
        if stripped:
            headers.append((STRIPPED_HEADER, DATA_KEY_FIELD.encode()))
        # The dead-letter topic is not co-partitioned: its partitioner spreads by key.
        return self.topics.dlq, record.key, value or b"", headers, None
