"""Prometheus metrics of the API; labels are route templates and statuses, never raw paths."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

REQUESTS = Counter(
    "journeys_api_requests_total",
    "HTTP requests answered",
    ["method", "route", "status"],
)
REQUEST_SECONDS = Histogram(
    "journeys_api_request_seconds",
    "HTTP request latency",
    ["method", "route", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
READ_YOUR_WRITES_SECONDS = Histogram(
    "journeys_api_read_your_writes_seconds",
    "Wait for the projector to reach a record the API produced",
    ["topic"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10),
)
READ_YOUR_WRITES_TIMEOUTS = Counter(
    "journeys_api_read_your_writes_timeouts_total",
    "Accepted writes answered before the projector reached them",
    ["topic"],
)
UNAVAILABLE = Counter(
    "journeys_api_unavailable_total",
    "Requests answered 503 because a dependency was out of reach",
    ["dependency"],
)
SHED = Counter(
    "journeys_api_shed_requests_total",
    "Requests answered 503 at once because API_MAX_IN_FLIGHT requests were already in hand",
)
AUDIT_RECORDS = Counter(
    "journeys_api_audit_records_total",
    "Audit records written to Kafka, by outcome",
    ["outcome"],
)
AUDIT_FAILURES = Counter(
    "journeys_api_audit_failures_total",
    "Answers replaced by 503 because their audit record could not be written",
)
AUDIT_UNCONFIRMED = Counter(
    "journeys_api_audit_unconfirmed_total",
    "Audit records of 503 answers (Kafka away) that Kafka did not take, or not known to",
)
SMS_INBOUND = Counter(
    "journeys_api_sms_inbound_total",
    "Inbound SMS taken from the gateway, by keyword (stop, start, help, none) and outcome "
    "(matched: sent to the patients texted at the number; unknown_sender: no patient was; "
    "repeat: a message already taken)",
    ["keyword", "outcome"],
)
