"""Trimming the commands this replica's partitions are done with, on a timer.

A `start_run.v2` carries the patient's wrapped data key; once the executor and every other
reader of the commands topic (the projector) have committed past it, it is only a copy. Every
`EXECUTOR_COMMANDS_TRIM_SECONDS` each replica deletes, on the partitions it owns, what all those
groups have committed past (`journeys_runtime.trimming`), so an erased patient's wrapped key
leaves the topic within consumer lag plus that period instead of the topic's retention.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence

from aiokafka import TopicPartition

from journeys_executor.metrics import COMMANDS_TRIMMED
from journeys_runtime.trimming import Trimmer


def commands_trimmer(
    bootstrap: str,
    groups: Sequence[str],
    every_seconds: float,
    owned: Callable[[], Collection[TopicPartition]],
) -> Trimmer:
    return Trimmer(bootstrap, groups, every_seconds, owned, COMMANDS_TRIMMED.inc)
