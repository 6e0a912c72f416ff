"""Prometheus metrics of the delivery service; labels are channels and outcomes, never ids."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

MESSAGES = Counter(
    "journeys_delivery_messages_total",
    "Delivery requests handled, by channel and outcome (sent, failed)",
    ["channel", "outcome"],
)
SEND_SECONDS = Histogram(
    "journeys_delivery_send_seconds",
    "Time to hand one message to its provider and get its answer",
    ["channel"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
RATE_WAIT_SECONDS = Histogram(
    "journeys_delivery_rate_wait_seconds",
    "Time a message waited for its channel's rate limit before its send",
    ["channel"],
    buckets=(0.001, 0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60),
)
RECORDS = Counter(
    "journeys_delivery_records_total",
    "Records read from the deliveries topic, by what became of them",
    ["outcome"],
)
TRIMMED = Counter(
    "journeys_delivery_requests_trimmed_total",
    "Partitions of the deliveries topic whose sent requests were deleted (DeleteRecords)",
)
