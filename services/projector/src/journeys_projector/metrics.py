"""Projector metrics; the `topic` label is the topic's role, never an id or patient data."""

from prometheus_client import Counter, Gauge, Histogram

# Types are few and named by us; a bound keeps a misbehaving producer from flooding the labels.
UNKNOWN_TYPES_LABELLED = 50

RECORDS = Counter(
    "journeys_projector_records_total",
    "Records consumed and accounted for: projected, ignored (not facts), skipped (projected "
    "from another record: see journeys_projector_records_skipped_total), unknown (a type of a "
    "newer version: an event with the common fields enters its run's timeline uninterpreted, "
    "anything else is skipped) or dead-lettered",
    ["topic", "outcome"],
)
SKIPPED_RECORDS = Counter(
    "journeys_projector_records_skipped_total",
    "Valid records not projected because another record carries their fact; reason "
    "`sealed_twin`: a v1 event of a sealed run, projected from its journeys.events.v2 copy",
    ["topic", "reason"],
)
UNKNOWN_RECORDS = Counter(
    "journeys_projector_records_unknown_total",
    "Records of a type this version does not know (written by a newer version): events with "
    "the common fields enter their run's timeline uninterpreted, others are skipped",
    ["topic", "type"],
)
_unknown_types: set[str] = set()


def count_unknown(topic: str, record_type: str) -> None:
    """Count a record of an unknown type under its type name, or `other` past the first few."""
    if record_type not in _unknown_types and len(_unknown_types) < UNKNOWN_TYPES_LABELLED:
        _unknown_types.add(record_type)
    label = record_type if record_type in _unknown_types else "other"
    UNKNOWN_RECORDS.labels(topic=topic, type=label).inc()


BATCH_RECORDS = Histogram(
    "journeys_projector_batch_records",
    "Records per committed batch",
    buckets=(1, 5, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10_000),
)
BATCH_SECONDS = Histogram(
    "journeys_projector_batch_seconds",
    "Time to project one batch: decode, dead-letter, write and commit",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0),
)
LAG_SECONDS = Histogram(
    "journeys_projector_lag_seconds",
    "From an event's occurredAt to its projection being committed",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0, 300.0, 3600.0),
)
STORE_RETRIES = Counter(
    "journeys_projector_store_retries_total", "Failed PostgreSQL attempts that will be retried"
)
STORE_UP = Gauge(
    "journeys_projector_store_up", "1 when the last PostgreSQL attempt succeeded, else 0"
)
