"""An in-memory view of every rule, kept current by tailing the compacted rules topic."""

from __future__ import annotations

import logging
import threading
import time

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError
from pydantic import ValidationError

from disparo.consumer import plain_consumer
from disparo.errors import KafkaUnavailable
from disparo.schemas import Rule
from disparo.settings import KernelSettings
from disparo.topics import Topics

log = logging.getLogger(__name__)


class RulesView:
    """Reads the rules topic from the start, without a consumer group, on a thread of its own.

    That thread owns the consumer: it creates, polls and closes it.
    """

    def __init__(self, settings: KernelSettings) -> None:
        self.settings = settings
        self.topic = Topics(settings.topic_prefix).rules
        self._rules: dict[int, Rule] = {}
        self._snapshot: tuple[Rule, ...] | None = None  # rebuilt after a change, not per call
        self._positions: dict[int, int] = {}
        self._ends: dict[int, int] | None = None  # the topic's ends when tailing began
        self._failed: Exception | None = None
        self._changed = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rules-view", daemon=True)

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

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def all(self) -> list[Rule]:
        """Every rule, ordered by id."""
        with self._changed:
            return sorted(self._rules.values(), key=lambda r: r.id)

    def snapshot(self) -> tuple[Rule, ...]:
        """Every rule ordered by id; the same tuple until a rule changes."""
        with self._changed:
            if self._snapshot is None:
                self._snapshot = tuple(sorted(self._rules.values(), key=lambda r: r.id))
            return self._snapshot

    def get(self, rule_id: int) -> Rule | None:
        with self._changed:
            return self._rules.get(rule_id)

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
        consumer = plain_consumer(self.settings, "disparo-rules-view")
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
                log.warning("rules view cannot reach Kafka, retrying in 1 s: %s", exc)
                self._stop.wait(1.0)
        consumer.close()

    def _tail_once(self, consumer: KafkaConsumer, tps: list[TopicPartition]) -> None:
        polled = consumer.poll(timeout_ms=200)
        # position() steps over offsets compaction removed; asked outside the lock.
        positions = {tp.partition: consumer.position(tp, timeout_ms=5000) for tp in tps}
        with self._changed:
            for records in polled.values():
                for record in records:
                    self._apply(record.key, record.value)
            self._positions.update(positions)
            self._changed.notify_all()

    def _apply(self, key: bytes | None, value: bytes | None) -> None:
        if key is None or not key.decode().isdigit():
            return
        self._snapshot = None
        if value is None:
            self._rules.pop(int(key.decode()), None)
            return
        try:
            rule = Rule.model_validate_json(value)
        except ValidationError as exc:
            log.error("ignoring invalid rule record %s: %s", key, exc)
            return
        self._rules[rule.id] = rule
