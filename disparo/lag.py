"""Consumer lag of a kafka-python consumer, exported as a gauge per topic and partition."""

from __future__ import annotations

import time
from typing import Any

from kafka import KafkaConsumer
from prometheus_client import Gauge

CONSUMER_LAG = Gauge(
    "disparo_consumer_lag",
    "Records not yet consumed per assigned partition (high watermark minus position).",
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
        """Update the gauges if due; returns the lags measured (None when not due)."""
        now = time.monotonic()
        if now - self._last < self.every_s:
            return None
        self._last = now
        # Local state only, no requests: the high watermark comes with every fetch response
        # and kafka-python keeps the known position on its subscription state. end_offsets()
        # could block this loop for minutes while a dead broker's partitions had no leader,
        # and position() validates offsets over the network (KIP-320) during an outage,
        # which could leave partitions unfetchable.
        lags = {}
        subscription = self.consumer._subscription
        for tp in self.consumer.assignment():
            high = self.consumer.highwater(tp)
            if high is None or not subscription.has_valid_position(tp):
                continue  # nothing fetched from it yet
            lags[tp] = max(0, high - subscription.position(tp).offset)
        seen = set()
        for tp, lag in lags.items():
            key = (tp.topic, str(tp.partition))
            seen.add(key)
            CONSUMER_LAG.labels(self.group, *key).set(lag)
        for gone in self._labels - seen:  # partitions moved to another member
            CONSUMER_LAG.remove(self.group, *gone)
        self._labels = seen
        return lags
