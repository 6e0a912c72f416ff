"""Commands put straight on the commands topic, as a producer other than the API could.

The API refuses both kinds (graph rules, size limits), but the executor must be safe whatever
reaches its topic: each of these runs must end `failed`, its command must reach the DLQ, and
every other patient on its partition must go on.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from journeys_contracts.commands import StartRun
from journeys_contracts.definition import JourneyDefinition
from journeys_contracts.envelope import CloudEvent
from journeys_runtime.kafka import RECORD_MAX_BYTES, producer
from journeys_runtime.topics import Topics

COPIES = 3  # of each kind, on keys spread over the partitions


@dataclass(frozen=True)
class Injected:
    kind: str
    stage: str  # the DLQ stage its command must reach


def _definition(start: str, *nodes: dict[str, Any]) -> JourneyDefinition:
    return JourneyDefinition.model_validate(
        {"name": "faults: injected", "start_node_id": start, "nodes": list(nodes)}
    )


# Each names a node that does not exist, met at a different moment.
POISON = {
    "after_delivery": _definition(
        "hello", {"id": "hello", "type": "MESSAGE", "message": "hi", "next_node_id": "gone"}
    ),
    "at_start": _definition("gone", {"id": "hello", "type": "MESSAGE", "message": "hi"}),
    # The scheduler fires this timer; the executor fails the run when it does.
    "after_timer": _definition(
        "wait", {"id": "wait", "type": "DELAY", "duration_seconds": 1, "next_node_id": "gone"}
    ),
}

# A run's stored state holds the patient context but not the definition, so once its start
# fits, nothing it does later outgrows the limit. What can still fail is the start itself:
# its RunStarted carries context and definition, tens of bytes more than the command.
MESSAGE_THEN_WAIT = _definition(
    "hello",
    {"id": "hello", "type": "MESSAGE", "message": "hi", "next_node_id": "wait"},
    {"id": "wait", "type": "DELAY", "duration_seconds": 3600},
)
# (definition, command value size): a command that fits whose RunStarted does not; a command
# over the limit itself.
OVERSIZED = {
    "start_over": (MESSAGE_THEN_WAIT, RECORD_MAX_BYTES - 10),
    "command_over": (MESSAGE_THEN_WAIT, RECORD_MAX_BYTES + 1000),
}


def _start(definition: JourneyDefinition, size: int | None = None) -> StartRun:
    patient = f"injected-{uuid.uuid4().hex[:8]}"
    command = StartRun(run_id=uuid.uuid4(), journey_id=uuid.uuid4(), patient_id=patient,
                       patient_context={"id": patient, "notes": ""}, definition=definition,
                       requested_at=datetime.now(UTC))  # fmt: skip
    if size is None:
        return command
    pad = "x" * (size - len(command.to_json()))
    sized = command.model_copy(update={"patient_context": {"id": patient, "notes": pad}})
    assert len(sized.to_json()) == size
    return sized


async def _send(bootstrap: str, topics: Topics, commands: list[StartRun]) -> None:
    p = producer(bootstrap)
    await p.start()
    try:
        for command in commands:
            envelope = CloudEvent(str(uuid.uuid4()), command.type, "/faults",
                                  str(command.run_id), datetime.now(UTC))  # fmt: skip
            key = hashlib.sha256(command.patient_id.encode()).hexdigest().encode()
            await p.send_and_wait(topics.commands, command.to_json(), key=key,
                                  headers=envelope.headers())  # fmt: skip
    finally:
        await p.stop()


async def inject_poison(bootstrap: str, topics: Topics) -> dict[str, Injected]:
    commands = {kind: [_start(d) for _ in range(COPIES)] for kind, d in POISON.items()}
    await _send(bootstrap, topics, [c for cs in commands.values() for c in cs])
    return {str(c.run_id): Injected(kind, "process") for kind, cs in commands.items() for c in cs}


async def inject_oversized(bootstrap: str, topics: Topics) -> dict[str, Injected]:
    commands = {kind: [_start(d, size) for _ in range(COPIES)]
                for kind, (d, size) in OVERSIZED.items()}  # fmt: skip
    await _send(bootstrap, topics, [c for cs in commands.values() for c in cs])
    return {str(c.run_id): Injected(kind, "size") for kind, cs in commands.items() for c in cs}
