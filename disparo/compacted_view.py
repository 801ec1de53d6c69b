"""An in-memory view of a compacted topic, kept current by tailing it from the start."""

from __future__ import annotations

import logging
import threading
import time
from typing import Generic, TypeVar

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from disparo.consumer import plain_consumer
from disparo.errors import DisparoError, KafkaUnavailable
from disparo.settings import KernelSettings

log = logging.getLogger(__name__)
K = TypeVar("K", int, str)
V = TypeVar("V")


class CompactedView(Generic[K, V]):
    """Reads a compacted topic from the start, without a consumer group, on a thread of its
    own; subclasses say how a record's key and value decode.

    That thread owns the consumer: it creates, polls and closes it.
    """

    what = "record"

    def __init__(self, settings: KernelSettings, topic: str) -> None:
        self.settings = settings
        self.topic = topic
        self._items: dict[K, V] = {}
        self._snapshot: tuple[V, ...] | None = None  # rebuilt after a change, not per call
        self._positions: dict[int, int] = {}
        self._ends: dict[int, int] | None = None  # the topic's ends when tailing began
        self._failed: Exception | None = None
        # Keys whose latest record cannot be read (e.g. sealed under another key); an older
        # unreadable record superseded by a readable one (after a rewrap) does not count.
        self._undecodable: dict[K, DisparoError] = {}
        self._caught_up = False
        self.generation = 0  # raised by every applied change
        self._syncs_wanted = 0
        self._syncs_done = 0
        self._sync_ends: dict[int, int] | None = None
        self._sync_for = 0
        self._changed = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"view-{topic}", daemon=True)

    def start(self, timeout_s: float = 30.0) -> None:
        """Start tailing and wait until the view holds everything published so far."""
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while self._ends is None and self._failed is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise KafkaUnavailable(f"{self.topic} not readable within {timeout_s:.0f}s")
                self._changed.wait(left)
            if self._failed is not None:
                raise self._failed
            ends = dict(self._ends or {})
        for partition, end in ends.items():
            self.wait_for(partition, end - 1, max(0.0, deadline - time.monotonic()))
        with self._changed:
            self._caught_up = True
            if self._undecodable:
                raise next(iter(self._undecodable.values()))  # a wrong key stops the start

    def sync(self, timeout_s: float = 5.0) -> bool:
        """Wait until the view holds every record published before this call (False: timeout)."""
        deadline = time.monotonic() + timeout_s
        with self._changed:
            self._syncs_wanted += 1
            ticket = self._syncs_wanted
            while self._syncs_done < ticket:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(left)
        return True

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def snapshot(self) -> tuple[V, ...]:
        """Every item in key order; the same tuple until one changes."""
        with self._changed:
            if self._snapshot is None:
                self._snapshot = tuple(self._items[k] for k in sorted(self._items))
            return self._snapshot

    def all(self) -> list[V]:
        """Every item, in key order."""
        return list(self.snapshot())

    def get(self, key: K) -> V | None:
        with self._changed:
            return self._items.get(key)

    def decode_key(self, key: bytes) -> K | None:
        """The item's key, or None for a record this view ignores."""
        raise NotImplementedError

    def decode_value(self, value: bytes) -> V:
        """The item; raises ValidationError when the record is not one."""
        raise NotImplementedError

    def accepts(self, old: V, new: V) -> bool:
        """Whether a record replaces the item it follows (every view applies the same test,
        so all agree which of two racing writes holds; the loser is ignored everywhere)."""
        return True

    def changed(self, key: K, old: V | None, new: V | None) -> None:
        """Called under the view's lock after an item changed (for derived indexes)."""

    def wait_for(self, partition: int, offset: int, timeout_s: float = 10.0) -> bool:
        """Wait until the record at `offset` has been applied; False on timeout."""
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while self._positions.get(partition, 0) <= offset:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(left)
        return True

    def _open(self) -> tuple[KafkaConsumer, list[TopicPartition]]:
        consumer = plain_consumer(self.settings, f"disparo-view-{self.topic}")
        partitions = consumer.partitions_for_topic(self.topic)
        if not partitions:
            consumer.close()
            raise KafkaUnavailable(f"topic {self.topic} does not exist; run `disparo topics`")
        tps = [TopicPartition(self.topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        with self._changed:
            self._positions = {tp.partition: 0 for tp in tps}
            self._ends = {tp.partition: end for tp, end in ends.items()}
            self._changed.notify_all()
        return consumer, tps

    def _run(self) -> None:
        try:
            consumer, tps = self._open()
        except (KafkaError, KafkaUnavailable) as exc:
            with self._changed:
                self._failed = exc
                self._changed.notify_all()
            return
        while not self._stop.is_set():
            try:
                self._tail_once(consumer, tps)
            except KafkaError as exc:  # the broker is away: keep the rules, try again
                log.warning("view of %s cannot reach Kafka, retrying in 1 s: %s", self.topic, exc)
                self._stop.wait(1.0)
        consumer.close()

    def _tail_once(self, consumer: KafkaConsumer, tps: list[TopicPartition]) -> None:
        with self._changed:
            wanted = self._syncs_wanted
        if wanted > self._syncs_done and self._sync_ends is None:
            ends = consumer.end_offsets(tps)  # asked after the syncs up to `wanted` were
            self._sync_ends = {tp.partition: end for tp, end in ends.items()}
            self._sync_for = wanted
        polled = consumer.poll(timeout_ms=0 if self._sync_ends else 200)
        # position() steps over offsets compaction removed; asked outside the lock.
        positions = {tp.partition: consumer.position(tp, timeout_ms=5000) for tp in tps}
        with self._changed:
            for records in polled.values():
                for record in records:
                    self._apply(record.key, record.value)
            self._positions.update(positions)
            ends = self._sync_ends
            if ends is not None and all(positions[p] >= end for p, end in ends.items()):
                self._syncs_done, self._sync_ends = self._sync_for, None
            self._changed.notify_all()

    def _apply(self, raw_key: bytes | None, value: bytes | None) -> None:
        key = self.decode_key(raw_key) if raw_key is not None else None
        if key is None:
            return
        old = self._items.get(key)
        self._snapshot = None
        self.generation += 1
        self._undecodable.pop(key, None)
        if value is None:
            self._items.pop(key, None)
            self.changed(key, old, None)
            return
        try:
            item = self.decode_value(value)
        except ValueError as exc:  # pydantic's ValidationError and JSON errors are ValueErrors
            log.error("ignoring invalid %s record %s: %s", self.what, raw_key, exc)
            return
        except DisparoError as exc:
            if self._caught_up:  # during the first read, only the latest record counts
                log.error("cannot read %s record %s: %s", self.what, raw_key, exc)
            self._undecodable[key] = exc
            return
        if old is not None and not self.accepts(old, item):
            log.info("%s %s: a record written over a newer one is ignored", self.what, key)
            return
        self._items[key] = item
        self.changed(key, old, item)
