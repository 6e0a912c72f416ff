"""What a request will put on Kafka must fit in a Kafka record, or the request gets 413.

A trigger under the body limit could make a StartRun larger than a record may be: Kafka
refused it, and the client was told 503 "retry later", for ever. Worse, a StartRun that
fits can make records that do not: the executor writes the definition and the patient
context again in RunStarted and in the run's state record. So the API measures what each
request makes, and what the executor will make from it, before producing anything.

When the API seals patient data, what it measures is sealed too: the sealed StartRun, the
executor's sealed RunStarted and its clear twin, and a state record holding the sealed context
and the wrapped data key. Sealing grows a value by a third (base64) and a fixed envelope.

Every record value stays within `RECORD_MAX_BYTES`, the one limit producers, topics and the
broker share (they leave room on top of it for the key, headers and batch framing).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pydantic_core

from journeys_api.errors import TooLargeError
from journeys_contracts.commands import StartRun
from journeys_contracts.definition import JourneyDefinition
from journeys_contracts.events import RunStarted
from journeys_runtime.kafka import RECORD_MAX_BYTES
from journeys_runtime.keyring import Keyring
from journeys_runtime.sealing import seal_event, seal_start_run, seal_value
from journeys_runtime.shredding import DataKey

MAX_RECORD_VALUE_BYTES = RECORD_MAX_BYTES
# The run state record holds RunStarted's definition and context plus the run's position
# (status, node ids of at most 200 characters, seq, a pending timer, times) and at most one
# pending message, counted apart at its own size.
STATE_RESERVE_BYTES = 1024
# The smallest context a run can have, to know whether any run of a definition can fit.
SMALLEST_CONTEXT: dict[str, Any] = {"id": "0"}
_PLACEHOLDER_ID = uuid.UUID(int=0)  # every UUID has the same length on the wire


def run_record_sizes(
    journey_id: uuid.UUID, patient_id: str, context: dict[str, Any],
    definition: JourneyDefinition, *, sealed_for: tuple[Keyring, str] | None = None,
) -> dict[str, int]:  # fmt: skip
    """Value sizes, in bytes, of the records one trigger makes: the StartRun command, the
    executor's RunStarted event, and an upper bound of the executor's run state record.
    `sealed_for` (the keyring and the patient key): the sizes of the sealed run's records."""
    now = datetime.now(UTC)
    command = StartRun(
        run_id=_PLACEHOLDER_ID, journey_id=journey_id, patient_id=patient_id,
        patient_context=context, definition=definition, requested_at=now,
    )  # fmt: skip
    started = RunStarted(
        run_id=_PLACEHOLDER_ID, journey_id=journey_id, patient_id=patient_id, seq=1,
        occurred_at=now, journey_name=definition.name, start_node_id=definition.start_node_id,
        patient_context=context, definition=definition,
    )  # fmt: skip
    if sealed_for is not None:
        return _sealed_sizes(command, started, definition, *sealed_for)
    started_size = len(started.to_json())
    return {
        "StartRun command": len(command.to_json()),
        "RunStarted event": started_size,
        "run state record": started_size + STATE_RESERVE_BYTES + _largest_message(definition),
    }


def _sealed_sizes(
    command: StartRun, started: RunStarted, definition: JourneyDefinition, keyring: Keyring,
    patient_key: str,
) -> dict[str, int]:  # fmt: skip
    # A sample key: a sealed value's size depends on the value's, never on the key's bytes.
    sample = DataKey.generate()
    wrapped = keyring.wrap(patient_key, sample)
    sealed_started = len(seal_event(started, sample, patient_key).to_json())
    twin = len(started.model_copy(update={"sealed_twin": True}).to_json())
    message = _largest_message_text(definition)
    sealed_message = (
        0 if message is None
        else len(seal_value(sample, patient_key, "message", message).model_dump_json())
    )  # fmt: skip
    state = (
        max(sealed_started, twin) + STATE_RESERVE_BYTES + sealed_message
        + len(pydantic_core.to_json(wrapped.to_json())) + len(patient_key)
    )  # fmt: skip
    return {
        "sealed StartRun command": len(
            seal_start_run(command, sample, wrapped, patient_key).to_json()
        ),
        "sealed RunStarted event": sealed_started,
        "RunStarted event": twin,
        "run state record": state,
    }


def _largest_message(definition: JourneyDefinition) -> int:
    message = _largest_message_text(definition)
    return 0 if message is None else len(pydantic_core.to_json(message))


def _largest_message_text(definition: JourneyDefinition) -> str | None:
    messages = [getattr(node, "message", None) for node in definition.nodes]
    texts = [m for m in messages if isinstance(m, str)]
    return max(texts, key=lambda m: len(pydantic_core.to_json(m)), default=None)


def require_fits(sizes: dict[str, int], context: str = "") -> None:
    """413 naming the limit when any of `sizes` is over it; sizes are counts, never content."""
    over = {name: size for name, size in sizes.items() if size > MAX_RECORD_VALUE_BYTES}
    if over:
        name, size = max(over.items(), key=lambda item: item[1])
        raise TooLargeError(
            f"{context}the {name} would be {size} bytes, over the limit of "
            f"{MAX_RECORD_VALUE_BYTES} bytes per Kafka record"
        )
