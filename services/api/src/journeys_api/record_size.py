"""What a request will put on Kafka must fit in a Kafka record, or the request gets 413.

A trigger under the body limit could make a StartRun larger than a record may be: Kafka
refused it, and the client was told 503 "retry later", for ever. Worse, a StartRun that
fits can make records that do not: the executor writes the definition and the patient
context again in RunStarted and in the run's state record. So the API measures what each
request makes, and what the executor will make from it, before producing anything.

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
    definition: JourneyDefinition,
) -> dict[str, int]:  # fmt: skip
    """Value sizes, in bytes, of the records one trigger makes: the StartRun command, the
    executor's RunStarted event, and an upper bound of the executor's run state record."""
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
    started_size = len(started.to_json())
    return {
        "StartRun command": len(command.to_json()),
        "RunStarted event": started_size,
        "run state record": started_size + STATE_RESERVE_BYTES + _largest_message(definition),
    }


def _largest_message(definition: JourneyDefinition) -> int:
    messages = [getattr(node, "message", "") for node in definition.nodes]
    return max((len(pydantic_core.to_json(m)) for m in messages if isinstance(m, str)), default=0)


def require_fits(sizes: dict[str, int], context: str = "") -> None:
    """413 naming the limit when any of `sizes` is over it; sizes are counts, never content."""
    over = {name: size for name, size in sizes.items() if size > MAX_RECORD_VALUE_BYTES}
    if over:
        name, size = max(over.items(), key=lambda item: item[1])
        raise TooLargeError(
            f"{context}the {name} would be {size} bytes, over the limit of "
            f"{MAX_RECORD_VALUE_BYTES} bytes per Kafka record"
        )
