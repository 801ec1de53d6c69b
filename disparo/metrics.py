"""Metrics more than one stage reports."""

from prometheus_client import Counter

DEAD_LETTERS = Counter(
    "disparo_dead_letters_total",
    "Messages sent to the dead-letter topic, by stage and reason.",
    ["stage", "reason"],
)
