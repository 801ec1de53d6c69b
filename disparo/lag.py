"""Consumer lag of a kafka-python consumer, exported as a gauge per topic and partition."""

from __future__ import annotations

import time
from typing import Any

from kafka import KafkaConsumer
from kafka.errors import KafkaError
from prometheus_client import Gauge

CONSUMER_LAG = Gauge(
    "disparo_consumer_lag",
    "Records not yet consumed per assigned partition (end offset minus position).",
    ["group", "topic", "partition"],
)


class LagMeter:
    """Measures lag at most every `every_s` seconds, from the consumer's own thread."""

    def __init__(self, consumer: KafkaConsumer, group: str, every_s: float = 5.0) -> None:
        self.consumer = consumer
        self.group = group
        self.every_s = every_s
        self._last = 0.0
        self._labels: set[tuple[str, str]] = set()

    def maybe_measure(self) -> dict[Any, int] | None:
        """Update the gauges if due; returns the lags measured (None when not due or failed)."""
        now = time.monotonic()
        if now - self._last < self.every_s:
            return None
        self._last = now
        owned = self.consumer.assignment()
        try:
            ends = self.consumer.end_offsets(list(owned)) if owned else {}
            lags = {tp: max(0, end - self.consumer.position(tp)) for tp, end in ends.items()}
        except KafkaError:
            return None
        seen = set()
        for tp, lag in lags.items():
            key = (tp.topic, str(tp.partition))
            seen.add(key)
            CONSUMER_LAG.labels(self.group, *key).set(lag)
        for gone in self._labels - seen:  # partitions moved to another member
            CONSUMER_LAG.remove(self.group, *gone)
        self._labels = seen
        return lags
