"""The order-lanes topic: lanes read back for newly owned partitions, waiting jobs fetched.

One group-less consumer on a thread of its own does both; lanes are written with the
worker's producer (after the sends they depend on are durable: see `DeliveryWorker.commit`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from kafka import TopicPartition
from kafka.errors import KafkaError

from consumers.lane_log import StoredLanes
from consumers.lanes import Pointer
from disparo.consumer import plain_consumer
from disparo.settings import KernelSettings

log = logging.getLogger(__name__)
READ_TIMEOUT_S = 30.0


class LaneStore:
    """Reads the order-lanes topic and fetches parked job records by position."""

    def __init__(self, settings: KernelSettings, topic: str) -> None:
        self.topic = topic
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lane-store")
        self._consumer = self._pool.submit(plain_consumer, settings, "disparo-lanes").result()

    def restore(self, partitions: Iterable[int]) -> StoredLanes:
        """Every lane stored for these partitions (blocking; from any thread)."""
        return self._pool.submit(self._restore, sorted(partitions)).result()

    async def fetch(self, pointer: Pointer) -> Any | None:
        """The record a pointer names, or None when it is gone (retention)."""
        return await asyncio.wrap_future(self._pool.submit(self._fetch, pointer))

    def fetch_now(self, pointer: Pointer) -> Any | None:
        """`fetch`, blocking (from the worker's consumer thread)."""
        return self._pool.submit(self._fetch, pointer).result()

    def close(self) -> None:
        self._pool.submit(self._consumer.close).result()
        self._pool.shutdown()

    def _restore(self, partitions: list[int]) -> StoredLanes:
        tps = [TopicPartition(self.topic, p) for p in partitions]
        stored = StoredLanes()
        if not tps:
            return stored
        consumer = self._consumer
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        deadline = time.monotonic() + READ_TIMEOUT_S
        while any(consumer.position(tp) < ends[tp] for tp in tps):
            if time.monotonic() > deadline:
                raise KafkaError(f"order lanes of partitions {partitions} not read in time")
            for records in consumer.poll(timeout_ms=200).values():
                for record in records:
                    stored.apply(record.partition, record.key, record.value)
        return stored

    def _fetch(self, pointer: Pointer) -> Any | None:
        tp = TopicPartition(pointer.topic, pointer.partition)
        consumer = self._consumer
        consumer.assign([tp])
        consumer.seek(tp, pointer.offset)
        deadline = time.monotonic() + READ_TIMEOUT_S
        while time.monotonic() < deadline:
            for record in consumer.poll(timeout_ms=200, max_records=1).get(tp, []):
                if record.offset == pointer.offset:
                    return record
                log.error("parked job %s at %s is gone (retention)", pointer.dispatch_id, pointer)
                return None  # the offset no longer exists: the next one came back
            if consumer.position(tp) > pointer.offset:
                return None
        raise KafkaError(f"parked job {pointer.dispatch_id} not read in time")
