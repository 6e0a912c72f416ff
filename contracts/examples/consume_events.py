"""Example consumer of Patient Journeys events: copy it, then replace `handle` with your logic.

Needs only aiokafka (`pip install aiokafka`). Prints one line per event (type, run id, seq,
time), never patient data:

    python consume_events.py --bootstrap 127.0.0.1:9092 --topic-prefix "" --from-beginning

Guarantees it relies on (see contracts/asyncapi.yaml): records are keyed by patient, so a
run's events arrive in order within one partition; every event has a per-run `seq` 1, 2, 3, …
with no gaps; the executor writes events in Kafka transactions, so a `read_committed`
reader never sees an aborted attempt. Offsets are committed after handling, so after a crash
some events come again: dedupe them by (runId, seq).

One event is about a patient, not a run: `journeys.patient.erased.v1` has no `runId` or `seq`
and names the erased runs in `runIds`; delete what you keep about them.

Patient events (an appointment booked, a form submitted) move runs: the line then also says
what started a run (`trigger=`), what it waits for and until when (`waitsFor=`, `until=`),
what met the wait or that it timed out, and which event made it exit. An exit is two events:
`journeys.run.exited.v1`, then at once the terminal `journeys.run.cancelled.v1` naming the same
event, so a reader that skips `run.exited` still sees the run end. Event types and times only:
the event's data (`eventData`) is patient data and is never printed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from typing import Any, TextIO

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

EVENTS_TOPIC = "journeys.events.v1"
PATIENT_ERASED = "journeys.patient.erased.v1"
# What each event adds to its line: (label, field) pairs, printed when the field is set.
DETAILS = {
    "journeys.run.started.v1": [("trigger", "triggerEventType")],
    "journeys.event.waiting.v1": [("waitsFor", "eventType"), ("until", "dueAt")],
    "journeys.event.matched.v1": [("matched", "eventType"), ("lookback", "lookback")],
    "journeys.event.timed_out.v1": [("timedOutAt", "firedAt")],
    "journeys.run.exited.v1": [("exitOn", "eventType")],
    "journeys.run.cancelled.v1": [("exitOn", "exitEventType")],
}


class SeqTracker:
    """The last `seq` handled per run: tells a new event from a duplicate and spots gaps.

    Kept in memory here; a real consumer stores it with its own effects (same database
    transaction), so a redelivered event is recognised even after a restart.
    """

    def __init__(self) -> None:
        self.last: dict[str, int] = {}

    def check(self, run_id: str, seq: int) -> tuple[str, int]:
        """('new' | 'duplicate' | 'gap', the previous seq); a gap is new but follows a loss."""
        previous = self.last.get(run_id, 0)
        if seq <= previous:
            return "duplicate", previous
        self.last[run_id] = seq
        return ("new" if seq == previous + 1 else "gap"), previous


def handle(record: ConsumerRecord[bytes, bytes], tracker: SeqTracker, out: TextIO) -> None:
    headers = {key: value.decode() for key, value in record.headers}
    ce_type, ce_time = headers.get("ce_type"), headers.get("ce_time")
    try:
        event: dict[str, Any] = json.loads(record.value or b"")
        if ce_type == PATIENT_ERASED:
            # Replace this with deleting what you keep about these runs (and forgetting their
            # seqs): the patient asked to be erased.
            erased = [str(run) for run in event["runIds"]]
            for run in erased:
                tracker.last.pop(run, None)
            print(f"{ce_type} erasureId={event['erasureId']} runs={len(erased)}", file=out,
                  flush=True)  # fmt: skip
            return
        run_id, seq = str(event["runId"]), int(event["seq"])
    except (ValueError, KeyError, TypeError):
        # Real consumers park such a record (e.g. on their own dead-letter topic) and go on.
        print(f"undecodable record at {record.partition}/{record.offset}", file=out, flush=True)
        return
    verdict, previous = tracker.check(run_id, seq)
    if verdict == "duplicate":
        print(f"duplicate {ce_type} runId={run_id} seq={seq} skipped", file=out, flush=True)
        return
    if verdict == "gap":
        # From `--from-beginning` this means loss; otherwise the run began before we joined.
        print(f"gap runId={run_id} missing seq {previous + 1}..{seq - 1}", file=out, flush=True)
    # Replace this with your logic. A type you do not know (from a newer producer) has no
    # details; its seq is noted above all the same, so skipping it never looks like a gap.
    print(f"{ce_type} runId={run_id} seq={seq} time={ce_time}{details(ce_type, event)}",
          file=out, flush=True)  # fmt: skip


def details(ce_type: str | None, event: dict[str, Any]) -> str:
    """` label=value` for each of the type's `DETAILS` fields that is set (`true` for a flag)."""
    shown = [(label, event.get(field)) for label, field in DETAILS.get(ce_type or "", [])]
    return "".join(
        f" {label}={'true' if value is True else value}"
        for label, value in shown
        if value not in (None, False)
    )


async def consume(args: argparse.Namespace, out: TextIO = sys.stdout) -> None:
    consumer = AIOKafkaConsumer(
        f"{args.topic_prefix}{EVENTS_TOPIC}",
        bootstrap_servers=args.bootstrap,
        group_id=args.group_id,
        isolation_level="read_committed",  # never see events of aborted transactions
        enable_auto_commit=False,  # commit only what has been handled
        auto_offset_reset="earliest" if args.from_beginning else "latest",
    )
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    tracker, handled = SeqTracker(), 0
    await consumer.start()
    try:
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=500, max_records=500)
            positions: dict[TopicPartition, int] = {}
            for partition, records in batches.items():
                for record in records:
                    handle(record, tracker, out)
                    positions[partition] = record.offset + 1
                    handled += 1
                    if handled == args.max_events:
                        stop.set()
                        break
                if stop.is_set():
                    break
            if positions:
                await consumer.commit(positions)
    finally:
        await consumer.stop()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--bootstrap", default="127.0.0.1:9092", help="Kafka bootstrap servers")
    parser.add_argument("--topic-prefix", default="", help="the deployment's topic prefix")
    parser.add_argument(
        "--from-beginning",
        action="store_true",
        help="with no committed offsets for the group yet, start at the oldest event",
    )
    parser.add_argument("--group-id", default="example-journey-events-reader")
    parser.add_argument("--max-events", type=int, default=None, help="stop after N records")
    return parser.parse_args(argv)


if __name__ == "__main__":
    asyncio.run(consume(parse_args()))
