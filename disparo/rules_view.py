"""An in-memory view of every rule, kept current by tailing the compacted rules topic."""

from __future__ import annotations

import logging
import threading
import time

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError
from pydantic import ValidationError

from disparo.errors import KafkaUnavailable
from disparo.schemas import Rule
from disparo.settings import KernelSettings
from disparo.topics import Topics

log = logging.getLogger(__name__)


class RulesView:
    """Reads the rules topic from the start, without a consumer group, in a thread."""

    def __init__(self, settings: KernelSettings) -> None:
        self.topic = Topics(settings.topic_prefix).rules
        self._consumer = KafkaConsumer(
            bootstrap_servers=settings.bootstrap_servers,
            enable_auto_commit=False,
            group_id=None,
            client_id="disparo-rules-view",
        )
        partitions = self._consumer.partitions_for_topic(self.topic)
        if not partitions:
            raise KafkaUnavailable(f"topic {self.topic} does not exist; run `disparo topics`")
        self._tps = [TopicPartition(self.topic, p) for p in sorted(partitions)]
        self._consumer.assign(self._tps)
        self._consumer.seek_to_beginning(*self._tps)
        self._rules: dict[int, Rule] = {}
        self._snapshot: tuple[Rule, ...] | None = None  # rebuilt after a change, not per call
        self._positions: dict[int, int] = {tp.partition: 0 for tp in self._tps}
        self._changed = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rules-view", daemon=True)

    def start(self, timeout_s: float = 30.0) -> None:
        """Start tailing and wait until the view holds everything published so far."""
        ends = self._consumer.end_offsets(self._tps)
        self._thread.start()
        for tp, end in ends.items():
            self.wait_for(tp.partition, end - 1, timeout_s)

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

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._tail_once()
            except KafkaError as exc:  # the broker is away: keep the rules, try again
                log.warning("rules view cannot reach Kafka, retrying in 1 s: %s", exc)
                self._stop.wait(1.0)
        self._consumer.close()

    def _tail_once(self) -> None:
        polled = self._consumer.poll(timeout_ms=200)
        with self._changed:
            for records in polled.values():
                for record in records:
                    self._apply(record.key, record.value)
            for tp in self._tps:  # position() steps over offsets compaction removed
                self._positions[tp.partition] = self._consumer.position(tp, timeout_ms=5000)
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
