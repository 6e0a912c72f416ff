"""Scheduler metrics; labels carry outcomes and event kinds, never ids or patient data."""

from prometheus_client import Counter, Gauge, Histogram

TIMERS_IN_WINDOW = Gauge(
    "journeys_scheduler_timers_in_window", "Pending timers held in memory (due within the window)"
)
PARTITIONS_ASSIGNED = Gauge(
    "journeys_scheduler_partitions_assigned", "Events partitions this replica owns timers of"
)
TIMERS_FIRED = Counter("journeys_scheduler_timers_fired_total", "FireTimer commands acknowledged")
FIRE_LATENESS = Histogram(
    "journeys_scheduler_fire_lateness_seconds",
    "fired_at - due_at of each FireTimer",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
EARLY_FIRES = Counter(
    "journeys_scheduler_early_fires_total", "Timers about to fire before due; refused (must be 0)"
)
FIRE_FAILURES = Counter(
    "journeys_scheduler_fire_failures_total", "FireTimer sends not acknowledged; retried"
)
EVENTS = Counter(
    "journeys_scheduler_events_total",
    "Event records consumed, by what they did to the timers",
    ["outcome"],
)
WINDOW_LOADS = Counter(
    "journeys_scheduler_window_loads_total", "Reloads of the in-memory window from PostgreSQL"
)
