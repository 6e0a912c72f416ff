"""Executor metrics; labels carry command and event types, never ids or patient data."""

from prometheus_client import Counter, Gauge, Histogram

COMMANDS = Counter("journeys_executor_commands_total", "Commands processed", ["type", "outcome"])
EVENTS = Counter("journeys_executor_events_total", "Events emitted", ["type"])
PROCESS_SECONDS = Histogram(
    "journeys_executor_process_seconds",
    "Time to process one command, delivery included",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
)
TRANSACTIONS = Counter(
    "journeys_executor_transactions_total",
    "Kafka transactions by outcome (committed, failed, fenced)",
    ["outcome"],
)
TRANSACTION_SECONDS = Histogram(
    "journeys_executor_transaction_seconds",
    "One partition's batch: begin to commit",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0),
)
RESTORED_RUNS = Counter(
    "journeys_executor_restored_runs_total", "Runs read back from the changelog on takeover"
)
RESTORE_SECONDS = Histogram(
    "journeys_executor_restore_seconds",
    "Time to read the run table of newly owned partitions",
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
)
OWNED_PARTITIONS = Gauge(
    "journeys_executor_owned_partitions", "Command partitions this replica processes now"
)
OVERSIZED_RECORDS = Counter(
    "journeys_executor_oversized_records_total",
    "Records too large to produce (event, run_state, journey_definition, dead_letter): the run "
    "fails, or the dead letter goes without its value",
    ["record"],
)
UNKNOWN_RECORDS = Counter(
    "journeys_executor_records_unknown_total",
    "Records skipped because a newer version wrote them (kind: command_type); never DLQ'd",
    ["kind"],
)
FORGOTTEN_RUNS = Counter(
    "journeys_executor_runs_forgotten_total",
    "Ended runs tombstoned in the changelog once their grace window passed",
)
COMMANDS_TRIMMED = Counter(
    "journeys_executor_commands_trims_total",
    "Deletions of consumed commands, one per partition trimmed (journeys_runtime.trimming)",
)
PATIENT_EVENTS = Counter(
    "journeys_executor_patient_events_total",
    "Patient events received, by outcome (applied, duplicate)",
    ["outcome"],
)
TRIGGERED_JOURNEYS = Gauge(
    "journeys_executor_triggered_journeys", "Journeys with triggers the executor knows"
)
TRIGGER_INDEX_LATE = Counter(
    "journeys_executor_trigger_index_late_total",
    "Patient events matched before the definitions topic was read up to their receipt",
)
