"""Prometheus metrics of the delivery worker."""

from prometheus_client import Counter, Gauge, Histogram

from disparo import metrics as shared

DELIVERIES = Counter(
    "disparo_deliveries_total", "Delivery attempts by outcome and reason.", ["outcome", "reason"]
)
DELIVERY_SECONDS = Histogram(
    "disparo_delivery_seconds",
    "Duration of one webhook POST, from send to answer.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
DEAD_LETTERS = shared.DEAD_LETTERS
RETRIES = Counter("disparo_retries_total", "Retries scheduled, by retry tier.", ["tier"])
CIRCUIT_STATE = Gauge(
    "disparo_circuit_state",
    "Circuit breaker per endpoint host:port (0 closed, 1 half-open, 2 open).",
    ["endpoint"],
)
DEFERRED = Counter(
    "disparo_deferred_total", "Jobs parked without an attempt, by reason.", ["reason"]
)
RULE_DELIVERIES = Counter(
    "disparo_rule_deliveries_total",
    "Delivery attempts by rule and outcome (one series pair per rule: bounded by the rules).",
    ["rule_id", "outcome"],
)
