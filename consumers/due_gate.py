"""Holds retry-tier partitions until their head job is due: pause, then resume on time."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from kafka import KafkaConsumer, TopicPartition


class DueGate:
    """Pauses a partition at its first not-yet-due job and resumes it when that job is due.

    Retry-tier topics hold jobs in the order they failed and every job of a tier waits the
    same delay (give or take jitter), so the head of a partition is always due first. A
    paused partition costs nothing while it waits: no polling, no sleeping on the hot path.
    """

    def __init__(self, consumer: KafkaConsumer) -> None:
        self.consumer = consumer
        self.waiting: dict[TopicPartition, datetime] = {}

    def hold(self, tp: TopicPartition, offset: int, until: datetime) -> None:
        """Re-read `tp` from `offset` once `until` has passed."""
        self.consumer.seek(tp, offset)
        self.consumer.pause(tp)
        self.waiting[tp] = until

    def release_due(self, now: datetime) -> None:
        """Resume every held partition whose head is due (and that this worker still owns)."""
        owned = self.consumer.assignment()
        for tp, until in list(self.waiting.items()):
            if tp not in owned:
                del self.waiting[tp]
            elif until <= now:
                self.consumer.resume(tp)
                del self.waiting[tp]

    def next_release_s(self, now: datetime, default_s: float) -> float:
        """Seconds until the next held partition is due, at most `default_s`."""
        if not self.waiting:
            return default_s
        soonest = min(self.waiting.values())
        return max(0.0, min(default_s, (soonest - now).total_seconds()))

    def forget(self, tps: Iterable[Any]) -> None:
        """Drop partitions this worker lost in a rebalance."""
        for tp in tps:
            self.waiting.pop(tp, None)
