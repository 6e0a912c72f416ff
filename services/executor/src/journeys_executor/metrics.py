"""Executor metrics; labels carry command and event types, never ids or patient data."""

from prometheus_client import Counter, Histogram

COMMANDS = Counter("journeys_executor_commands_total", "Commands processed", ["type", "outcome"])
EVENTS = Counter("journeys_executor_events_total", "Events emitted", ["type"])
PROCESS_SECONDS = Histogram(
    "journeys_executor_process_seconds",
    "Time to process one command, delivery included",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
)
