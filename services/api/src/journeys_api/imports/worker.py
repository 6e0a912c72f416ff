"""The importer: takes queued imports one at a time and turns their rows into patient events.

It runs in the importer service (`journeys_api.imports.service`), a process of its own so an
import never takes the API's time; replicas share the queue through the ledger's leases. The
file is read from PostgreSQL chunk by chunk and parsed in a worker thread (`rows.read`), a
batch of rows at a time, the next batch parsed while one is sent; an event id an earlier row
had is found in PostgreSQL (`ledger.first_rows`); each batch's events go by the path of
`POST /events` (sealed under the patients' keys, `source` `import:<importId>`), and only once
Kafka has them are the batch's figures, errors and event ids checkpointed. A failure to reach
Kafka or PostgreSQL holds the batch and tries again; it never skips rows nor ends the import.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from itertools import islice
from typing import Any, TypeVar
from uuid import UUID

import psycopg
from psycopg_pool import AsyncConnectionPool

from journeys_api import patient_events
from journeys_api.errors import TooLargeError
from journeys_api.imports import ledger, progress
from journeys_api.imports.events import inbound
from journeys_api.imports.notify import ChatNotifier, Outbox
from journeys_api.imports.rows import (
    ClinicEvent,
    Duplicate,
    FileRefusedError,
    Item,
    RowError,
    read,
)
from journeys_api.imports.settings import ImporterSettings
from journeys_runtime.backoff import Backoff

log = logging.getLogger(__name__)
T = TypeVar("T")
SWEEP_SECONDS = 600.0


def _chunks(database_url: str, import_id: UUID) -> Iterator[bytes]:
    """The file's bytes in upload order, one chunk in memory at a time (a server-side
    cursor on a connection of its own, used from the parsing thread only)."""
    with psycopg.connect(database_url) as conn, conn.cursor(name="import_chunks") as cursor:
        cursor.itersize = 1
        cursor.execute(
            "SELECT data FROM api_import_chunks WHERE import_id = %s ORDER BY seq", (import_id,)
        )
        for (data,) in cursor:
            yield bytes(data)


def _take(items: Iterator[Item], most: int) -> list[Item] | FileRefusedError:
    try:
        return list(islice(items, most))
    except FileRefusedError as exc:
        return exc


@dataclass
class _ChatFigures:
    """The chat's figures of an import: those of the importers before this one (`claimed`),
    and this one's notifier's."""

    claimed: dict[str, Any]
    notifier: ChatNotifier | None

    def counts(self) -> dict[str, Any]:
        outbox = self.notifier.outbox if self.notifier is not None else Outbox()
        return {
            "chat_delivered": self.claimed["chat_delivered"] + outbox.delivered,
            "chat_failed_attempts": self.claimed["chat_failed_attempts"] + outbox.failed_attempts,
            "chat_given_up": self.claimed["chat_given_up"] + outbox.given_up,
            "chat_last_error": outbox.last_error,
        }


class _ReadAhead:
    """The file's batches of items, the next one parsed in a thread while the caller sends the
    one in hand (the parsing and the waits on Kafka and PostgreSQL overlap)."""

    def __init__(self, items: Iterator[Item], size: int) -> None:
        self._items, self._size = items, size
        self._next: asyncio.Future[list[Item] | FileRefusedError] | None = None

    def _read(self) -> None:
        self._next = asyncio.ensure_future(asyncio.to_thread(_take, self._items, self._size))

    async def take(self) -> list[Item] | FileRefusedError:
        if self._next is None:
            self._read()
        assert self._next is not None
        try:
            batch = await self._next
        finally:
            self._next = None
        if isinstance(batch, list) and batch:
            self._read()
        return batch

    async def close(self) -> None:
        """Wait (bounded) for the batch being parsed, then close the reading, and with it the
        chunks' cursor and its connection. A thread still parsing after that is left to end
        on its own (PostgreSQL may be out of reach)."""
        pending, self._next = self._next, None
        if pending is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(pending), timeout=5.0)
            if not pending.done():
                pending.add_done_callback(lambda f: f.cancelled() or f.exception())
                return
        close = getattr(self._items, "close", None)
        if close is not None:
            close()


class Importer:
    def __init__(
        self, sink: patient_events.Sink, pool: AsyncConnectionPool[Any], settings: ImporterSettings
    ) -> None:
        self.sink, self.pool, self.database_url = sink, pool, settings.database_url
        self.worker = f"{socket.gethostname()}:{uuid.uuid4().hex[:8]}"
        self.batch_rows = settings.batch_rows
        self.lease_seconds = settings.lease_seconds
        self.progress_seconds = settings.progress_seconds
        self.webhook = settings.progress_webhook_url
        self.webhooks = dict(settings.progress_webhooks)
        self._listed = False
        self.error_rows_days = settings.error_rows_days
        self._swept = 0.0

    async def run(self, stopping: asyncio.Event) -> None:
        backoff = Backoff(initial=0.5, maximum=10.0)
        while not stopping.is_set():
            try:
                if not self._listed:
                    await ledger.list_webhooks(self.pool, self.webhooks)
                    self._listed = True
                claimed = await ledger.claim(self.pool, self.worker, self.lease_seconds)
            except (psycopg.Error, OSError) as exc:
                log.warning("import queue unreachable", extra={"error": type(exc).__name__})
                await backoff.wait()
                continue
            backoff.reset()
            if claimed is None:
                await self._sweep()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(1.0):
                        await stopping.wait()
                continue
            try:
                await self._import(claimed, stopping)
            except (psycopg.Error, OSError) as exc:  # the file's chunks out of reach: retaken
                log.warning("import interrupted, retaken once its lease runs out",
                            extra={"import_id": str(claimed["import_id"]),
                                   "error": type(exc).__name__})  # fmt: skip
                await backoff.wait()
            except Exception as exc:  # a fault of ours: end it, rather than retake it for ever
                log.exception("import failed", extra={"import_id": str(claimed["import_id"])})
                reason = f"importer error: {type(exc).__name__}"
                with contextlib.suppress(Exception):
                    await ledger.finish(
                        self.pool,
                        claimed["import_id"],
                        self.worker,
                        ledger.FAILED,
                        reason,
                    )

    def _webhook(self, name: str | None) -> str | None:
        """The URL of the webhook the upload named, else the deployment's."""
        if name is not None:
            if name in self.webhooks:
                return self.webhooks[name]
            # Listed by another importer, or before a change of settings: the default tells.
            log.warning("an import names a webhook this importer lacks", extra={"webhook": name})
        return self.webhook

    async def _sweep(self) -> None:
        """Rejected rows' cells go `error_rows_days` after their import ended (looked for
        every ten minutes, when idle)."""
        if time.monotonic() - self._swept < SWEEP_SECONDS:
            return
        self._swept = time.monotonic()
        try:
            dropped = await ledger.forget_cells(self.pool, self.error_rows_days)
        except (psycopg.Error, OSError) as exc:
            log.warning("old rejected rows not swept", extra={"error": type(exc).__name__})
            return
        if dropped:
            log.info("old rejected rows' cells dropped", extra={"rows": dropped})

    async def _import(self, claimed: dict[str, Any], stopping: asyncio.Event) -> None:
        import_id: UUID = claimed["import_id"]
        tally = progress.Tally(
            rows=claimed["rows_read"], accepted=claimed["accepted"], rejected=claimed["rejected"],
            duplicates=claimed["duplicates"], revenue=ledger.revenue_of(claimed["revenue"]),
        )  # fmt: skip
        skip = tally.rows
        started = time.monotonic()
        url = self._webhook(claimed["notify"])
        notifier = ChatNotifier(url) if url else None
        chat = _ChatFigures(claimed, notifier)
        if notifier is not None:
            notifier.post(progress.started(import_id, claimed["file_name"]))
        log.info("import claimed", extra={"import_id": str(import_id), "resume_at_row": skip})
        batches = _ReadAhead(
            read(_chunks(self.database_url, import_id), repeats=False), self.batch_rows
        )
        last_progress = time.monotonic()
        status, reason, held = ledger.COMPLETED, None, True
        try:
            while not stopping.is_set():
                batch = await batches.take()
                if isinstance(batch, FileRefusedError):
                    status, reason = ledger.FAILED, str(batch)
                    break
                if not batch:
                    break
                if skip:
                    dropped = min(skip, len(batch))
                    batch, skip = batch[dropped:], skip - dropped
                if not batch:
                    continue
                after = await self._commit(import_id, batch, tally, chat, stopping)
                if after is None:
                    held = False
                    break  # another importer holds it now, or this replica is stopping
                tally = after
                now = time.monotonic()
                if notifier is not None and now - last_progress >= self.progress_seconds:
                    notifier.post(progress.progressed(import_id, tally, now - started),
                                  replaceable=True)  # fmt: skip
                    last_progress = now
        finally:
            await batches.close()
        if stopping.is_set() or not held:
            # Stopping, or the lease lost: the importer that holds it (now or later) goes on.
            if notifier is not None:
                await notifier.close(within=1.0)
            return
        await ledger.finish(self.pool, import_id, self.worker, status, reason)
        ended = {"import_id": str(import_id), "status": status, "rows": tally.rows,
                 "accepted": tally.accepted}  # fmt: skip
        log.info("import ended", extra=ended)
        if notifier is not None:
            notifier.post(
                progress.finished(import_id, tally, time.monotonic() - started, status, reason)
            )
            await notifier.close(within=10.0)
            try:
                await ledger.record_chat(self.pool, import_id, self.worker, chat.counts())
            except (psycopg.Error, OSError) as exc:  # only the chat's last figures are lost
                log.warning("chat figures not recorded", extra={"error": type(exc).__name__})

    async def _commit(
        self, import_id: UUID, batch: list[Item], tally: progress.Tally, chat: _ChatFigures,
        stopping: asyncio.Event,
    ) -> progress.Tally | None:  # fmt: skip
        """Send the batch's events, then checkpoint its figures and errors, each again until
        done; the figures after the batch. None: the lease is another importer's, or this
        replica is stopping."""
        marked = await self._until_done(
            import_id, stopping, lambda: self._repeats(import_id, batch)
        )
        if marked is None:
            return None
        batch, ids = marked
        sent = await self._until_done(import_id, stopping, lambda: self._send(import_id, batch))
        if sent is None:
            return None
        after = replace(tally, revenue_by_week=dict(tally.revenue_by_week))
        for item in sent:
            after.add(item)
        counts = {"rows": after.rows, "accepted": after.accepted, "rejected": after.rejected,
                  "duplicates": after.duplicates, "revenue": after.revenue,
                  **chat.counts()}  # fmt: skip
        problems = [item for item in sent if not isinstance(item, ClinicEvent)]
        kept = await self._until_done(import_id, stopping, lambda: ledger.checkpoint(
            self.pool, import_id, self.worker, counts, problems, ids,
            patient_key=self.sink.patient_key))  # fmt: skip
        if kept is False:
            log.warning("import lease lost", extra={"import_id": str(import_id)})
        return after if kept else None

    async def _until_done(
        self, import_id: UUID, stopping: asyncio.Event, attempt: Callable[[], Awaitable[T]]
    ) -> T | None:
        """`attempt`'s answer, tried again while Kafka or PostgreSQL is away; None once
        stopping."""
        backoff = Backoff(initial=0.5, maximum=10.0)
        while not stopping.is_set():
            try:
                return await attempt()
            except Exception as exc:
                failure = {"import_id": str(import_id), "error": type(exc).__name__}
                log.warning("import batch not committed, retrying", extra=failure)
                await backoff.wait()
        return None

    async def _repeats(
        self, import_id: UUID, batch: list[Item]
    ) -> tuple[list[Item], list[tuple[str, int]]]:
        """The batch with each event whose id an earlier row of the file had made a
        `Duplicate` of that row, and the ids (digests) with the rows that have them first.
        The earlier batches' ids are in PostgreSQL (`ledger.first_rows`): a file of millions
        of rows would hold hundreds of megabytes of them here."""
        digests = {i.row: ledger.id_digest(i.event_id) for i in batch if isinstance(i, ClinicEvent)}
        firsts = await ledger.first_rows(self.pool, import_id, set(digests.values()))
        marked: list[Item] = []
        ids: list[tuple[str, int]] = []
        for item in batch:
            if isinstance(item, ClinicEvent):
                digest = digests[item.row]
                first = firsts.setdefault(digest, item.row)
                if first != item.row:
                    marked.append(Duplicate(item.row, first, item.line))
                    continue
                ids.append((digest, item.row))
            marked.append(item)
        return marked, ids

    async def _send(self, import_id: UUID, batch: list[Item]) -> list[Item]:
        """The batch's events in Kafka; the batch as sent, a row whose event cannot fit one
        Kafka record turned into its row error (found one by one, which is rare)."""
        source = f"import:{import_id}"
        try:
            await self._publish([i for i in batch if isinstance(i, ClinicEvent)], source)
            return batch
        except TooLargeError:
            pass
        sent: list[Item] = []
        for item in batch:
            if isinstance(item, ClinicEvent):
                try:
                    await self._publish([item], source)
                except TooLargeError as exc:
                    item = RowError(item.row, 0, None, f"too large for one event: {exc.detail}")
            sent.append(item)
        return sent

    async def _publish(self, rows: list[ClinicEvent], source: str) -> None:
        accepted = patient_events.unique([inbound(r) for r in rows], self.sink.patient_key)
        if accepted:
            await patient_events.publish(self.sink, accepted, datetime.now(UTC), source)
