"""Prometheus metrics of the dispatcher."""

from prometheus_client import Counter

from disparo import metrics as shared

EVENTS = Counter(
    "disparo_dispatcher_events_total",
    "Order events consumed by the dispatcher, by result (routed, unmatched, dead_lettered).",
    ["result"],
)
JOBS = Counter("disparo_dispatch_jobs_total", "Dispatch jobs emitted by the dispatcher.")
PARKED = Counter(
    "disparo_parked_jobs_total",
    "Dispatch jobs sent straight to a retry tier because a worker parked their endpoint.",
)
RULE_CHANGES = Counter(
    "disparo_rule_changes_total", "Rule records applied to the rules table, by kind.", ["kind"]
)
DEAD_LETTERS = shared.DEAD_LETTERS
