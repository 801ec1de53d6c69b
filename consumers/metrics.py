"""Prometheus metrics of the delivery worker."""

import functools
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

from consumers import classify
from disparo import metrics as shared

DELIVERIES = Counter(
    "disparo_deliveries_total", "Delivery attempts by outcome and reason.", ["outcome", "reason"]
)
ATTEMPTS = Counter(
    "disparo_attempts_total",
    "Delivery attempts by attempt number (1 = first try; bounded by max_attempts <= 20) and "
    "whether it was a manual resend.",
    ["attempt", "manual"],
)
DELIVERY_SECONDS = Histogram(
    "disparo_delivery_seconds",
    "Duration of one webhook POST, from send to answer.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
DEAD_LETTERS = shared.DEAD_LETTERS
RETRIES = Counter("disparo_retries_total", "Retries scheduled, by retry tier.", ["tier"])
CIRCUITS = Gauge(
    "disparo_circuits",
    "Endpoints (one account's host:port each) whose circuit is closed, half_open or open; "
    "no host names in labels: the worker log names the endpoints.",
    ["state"],
)
DEFERRED = Counter(
    "disparo_deferred_total", "Jobs parked without an attempt, by reason.", ["reason"]
)
RULE_DELIVERIES = Counter(
    "disparo_rule_deliveries_total",
    "Delivery attempts by rule and outcome (one series pair per rule: bounded by the rules).",
    ["rule_id", "outcome"],
)

ACCOUNT_DELIVERIES = Counter(
    "disparo_account_deliveries_total",
    "Delivery attempts by account and outcome, for the accounts named in "
    "DISPARO_METRICS_ACCOUNTS only (bounded by that list).",
    ["account", "outcome"],
)

JOB_PARTITIONS = Gauge(
    "disparo_job_partitions",
    "dispatch-jobs partitions this worker owns: its share of every rule's max_per_second.",
)
RATE_WAITS = Counter(
    "disparo_rate_waits_total",
    "Jobs that waited in memory for their rule's max_per_second turn (parked ones count in "
    'disparo_deferred_total{reason="rate_limited"}).',
)
STATUS_REGRESSIONS = Counter(
    "disparo_status_regressions_total",
    "Dispatches of status-guarded rules not sent because the customer already holds a later "
    "order status (status regressed), by rule (bounded by the rules).",
    ["rule_id"],
)
STATUS_UNRANKED = Counter(
    "disparo_status_unranked_total",
    "Dispatches of status-guarded rules sent unchecked: the account's lifecycle does not "
    "name their order status, by rule (bounded by the rules).",
    ["rule_id"],
)
HELD = Counter("disparo_held_total", "Dispatches held (not sent) because their rule is paused.")
LANE_JOBS = Counter(
    "disparo_lane_jobs_total",
    "Jobs of order-aware rules by what their order lane decided "
    "(deliver, wait, skip, supersede, released, lost).",
    ["verdict"],
)


def declare_series(accounts: frozenset[str] = frozenset()) -> None:
    """Create every outcome/reason series at zero, so rates see a process's first failures."""
    DELIVERIES.labels("success", classify.SUCCESS)
    for reason in classify.REASONS:
        if reason != classify.SUCCESS:
            DELIVERIES.labels("failure", reason)
    for account in accounts:
        ACCOUNT_DELIVERIES.labels(account, "success")
        ACCOUNT_DELIVERIES.labels(account, "failure")


@functools.lru_cache(maxsize=65536)
def bound(metric: Any, *values: str) -> Any:
    """The child of `metric` for these label values, looked up once: `.labels()` costs a
    lock, a tuple and a dict lookup on every call of the hot path otherwise."""
    return metric.labels(*values)


@functools.lru_cache(maxsize=65536)
def _rule_series(rule_id: int, outcome: str) -> Any:
    """A rule's outcome counter; a new rule gets both outcome series at once."""
    RULE_DELIVERIES.labels(str(rule_id), "success")
    RULE_DELIVERIES.labels(str(rule_id), "failure")
    return RULE_DELIVERIES.labels(str(rule_id), outcome)


def count_rule_delivery(rule_id: int, outcome: str) -> None:
    """Count an attempt for a rule."""
    _rule_series(rule_id, outcome).inc()
