"""A topic sink: batches one topic's records into one table, each record stored once.

Each record becomes a `Piece`: its rows as JSON lines ready for ClickHouse. Pieces are
inserted in batches named by their offsets (a retried insert is dropped by ClickHouse) and
their offsets committed after the insert; a sink that crashed between the two re-reads them
and skips what its table already holds (by `kafka_partition` and `kafka_offset`, columns
every sunk table has; all rows of one record share them).
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from kafka import ConsumerRebalanceListener, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata
from prometheus_client import Counter

from analytics.errors import StoreError
from analytics.history.store import Store
from analytics.settings import AnalyticsSettings
from disparo import failpoints
from disparo.consumer import (
    COMMIT_TIMEOUT_S,
    commit_bounded,
    group_consumer,
    plain_consumer,
    subscribe_when_ready,
)
from disparo.dead_letter import DeadLetters
from disparo.errors import KafkaUnavailable
from disparo.topics import Topics

log = logging.getLogger(__name__)
RETRY_DELAYS_S = (0.5, 1.0, 2.0, 5.0, 10.0)  # between retries of one failed insert
POLL_MS = 100
# With rows in hand from a batched topic, a poll this short finding nothing means caught up.
CAUGHT_UP_POLL_MS = 20


@dataclass(frozen=True)
class SinkMetrics:
    """The counters one sink moves."""

    rows: Counter
    batches: Counter
    insert_failures: Counter


@dataclass(frozen=True)
class SinkTarget:
    """Which topic a sink reads, as which group, into which table."""

    name: str  # for logs and failpoints, e.g. "sink"
    topic: str
    group: str
    table: str
    metrics: SinkMetrics
    # Its producers batch already (a worker's commit cycle): insert once the sink has read
    # all there is, rather than lingering for more that will not come before the next cycle.
    batched: bool = False


@dataclass
class Piece:
    """One record's rows, as JSON lines each ending with a newline, ready to insert."""

    record: Any  # the Kafka record: its partition, offset, and what a dead letter keeps
    lines: bytes
    check: bool = False  # its rows may repeat stored ones: look them up before inserting

    @property
    def partition(self) -> int:
        return int(self.record.partition)

    @property
    def offset(self) -> int:
        return int(self.record.offset)


def dedup_token(ranges: dict[int, tuple[int, int]]) -> str:
    """A token naming exactly which offsets a batch holds, so a retried insert is dropped."""
    text = ",".join(f"{p}:{a}-{b}" for p, (a, b) in sorted(ranges.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


class _NoteAssignment(ConsumerRebalanceListener):  # type: ignore[misc]
    """Flags a new assignment; it runs inside `poll()`, which handles the flag right after."""

    def __init__(self, sink: TopicSink) -> None:
        self.sink = sink

    def on_partitions_revoked(self, revoked: Any) -> None:
        return None

    def on_partitions_assigned(self, assigned: Any) -> None:
        self.sink.assignment_changed = True


class TopicSink:
    """Consumes a topic, inserts batches, commits offsets after each insert.

    `run()`'s thread owns the consumer: it creates, polls, commits and closes it. Other
    threads read `assigned` and `last_turn` only. Subclasses turn records into rows.
    """

    def __init__(
        self,
        settings: AnalyticsSettings,
        store: Store,
        producer: KafkaProducer,
        target: SinkTarget,
    ) -> None:
        self.settings = settings
        self.store = store
        self.producer = producer
        self.target = target
        self.topics = Topics(settings.topic_prefix)
        self.dead_letters = DeadLetters(producer, self.topics.dead_letter, target.name)
        self._stop = threading.Event()
        self.rows_written = 0
        self.assignment_changed = False
        self.assigned: frozenset[TopicPartition] = frozenset()
        self.store_ok = True
        self.last_turn = time.monotonic()  # the loop's heartbeat, for liveness
        # Per partition, the highest offset whose row is already stored. A sink that crashed
        # between insert and commit re-reads those records; they are skipped, not re-inserted.
        self.stored: dict[int, int] = {}
        self.uncommitted: dict[TopicPartition, OffsetAndMetadata] = {}
        self.consumer: KafkaConsumer  # created by `run()`, on its own thread

    def pieces_of(self, records: list[Any]) -> list[Piece]:
        """The pieces of new records (dead-lettering those that cannot be read)."""
        raise NotImplementedError

    def rows_in(self, record: Any) -> int:
        """How many rows a record holds (default: one)."""
        return 1

    def keep_new(self, pieces: list[Piece]) -> list[Piece]:
        """The pieces to insert, once checked for repeats where needed (default: all)."""
        return pieces

    def refused(self, pieces: list[Piece]) -> list[Piece]:
        """After ClickHouse refused an insert: the pieces without unreadable rows (default:
        all, which are then retried while ClickHouse is away)."""
        return pieces

    def after_store(self, pieces: list[Piece]) -> None:
        """Called with the pieces of each insert once ClickHouse has them (default: nothing)."""

    def forget_owners(self) -> None:
        """Called when the sink's partitions change (default: nothing)."""

    def _consumer(self) -> KafkaConsumer:
        consumer = group_consumer(
            self.settings,
            self.target.group,
            f"disparo-{self.target.name}",
            max_poll_records=self.settings.sink_batch,
            fetch_min_bytes=256 * 1024,
            fetch_max_wait_ms=100,
        )
        subscribe_when_ready(consumer, [self.target.topic], _NoteAssignment(self))
        return consumer

    def stored_offsets(self) -> dict[int, int]:
        """The highest Kafka offset stored per partition of the topic."""
        rows = self.store.check(
            f"SELECT kafka_partition AS p, max(kafka_offset) AS o "
            f"FROM {self.store.database}.{self.target.table} GROUP BY kafka_partition"
        )
        return {int(r["p"]): int(r["o"]) for r in rows}

    def _stored_and_still_in_topic(self) -> dict[int, int]:
        """Stored offsets, minus partitions whose topic was recreated since (ends went back)."""
        stored = self.stored_offsets()
        tps = [TopicPartition(self.target.topic, p) for p in stored]
        try:
            ends = self._end_offsets(tps) if tps else {}
        except (KafkaError, KafkaUnavailable) as exc:  # a leader is away: keep them as they are
            log.warning("cannot read %s's end offsets (%s); skipping the check", tps, exc)
            return stored
        for tp, end in ends.items():
            if stored[tp.partition] >= end:
                log.warning(
                    "%s has rows up to offset %d stored but ends at %d: the topic was "
                    "recreated; reading it from its committed offset",
                    tp,
                    stored[tp.partition],
                    end,
                )
                del stored[tp.partition]
        return stored

    def _end_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        # Asked through a short-lived group-less consumer: right after a rebalance, the
        # group consumer's own end_offsets() could wait on the rebalance it is part of.
        probe = plain_consumer(self.settings, f"disparo-{self.target.name}-probe")
        try:
            ends: dict[TopicPartition, int] = probe.end_offsets(tps)
            return ends
        finally:
            probe.close()

    def run(self) -> None:
        """Consume and insert until `stop()`; the last partial batch is flushed."""
        self.consumer = self._consumer()
        pending: list[Any] = []
        rows = 0
        started = time.monotonic()
        while not self._stop.is_set():
            self.last_turn = time.monotonic()
            room = max(1, self.settings.sink_batch - rows)
            wait_ms = CAUGHT_UP_POLL_MS if pending and self.target.batched else POLL_MS
            polled = self.consumer.poll(timeout_ms=wait_ms, max_records=room)
            self.assigned = frozenset(self.consumer.assignment())
            if self.assignment_changed:
                self.assignment_changed = False
                self.stored = self._stored_and_still_in_topic()
                self.forget_owners()
            for records in polled.values():
                pending.extend(records)
                rows += sum(self.rows_in(r) for r in records)
            full = rows >= self.settings.sink_batch
            due = time.monotonic() - started >= self.settings.sink_linger_ms / 1000
            caught_up = self.target.batched and not polled
            if pending and (full or due or caught_up):
                self.flush(pending)
                pending, rows = [], 0
            if not pending:
                started = time.monotonic()
        if pending:
            self.flush(pending)
        self.consumer.close()
        self.assigned = frozenset()

    def stalled_for(self) -> float:
        """Seconds since the consume loop last turned (0 once stopped)."""
        return 0.0 if self._stop.is_set() else time.monotonic() - self.last_turn

    def consuming(self) -> bool:
        """True once the sink holds partitions of its topic and can write."""
        return not self._stop.is_set() and self.store_ok and bool(self.assigned)

    def stop(self) -> None:
        """Ask `run()` to flush and return."""
        self._stop.set()

    def flush(self, records: list[Any]) -> None:
        """Insert one batch (de-duplicated by its offsets), then commit those offsets."""
        ranges: dict[int, tuple[int, int]] = {}
        for r in records:
            lo, hi = ranges.get(r.partition, (r.offset, r.offset))
            ranges[r.partition] = (min(lo, r.offset), max(hi, r.offset))
        fresh = [r for r in records if r.offset > self.stored.get(r.partition, -1)]
        stored = self._insert_until_stored(self.pieces_of(fresh), dedup_token(ranges))
        if stored is None:
            return  # stopping while ClickHouse is away: the offsets stay uncommitted
        if stored:
            failpoints.hit(f"{self.target.name}.after_insert")  # between insert and commit
            self.after_store(stored)
        self.producer.flush(timeout=COMMIT_TIMEOUT_S)  # dead letters, before the commit
        rows = sum(piece.lines.count(b"\n") for piece in stored)
        self.target.metrics.rows.inc(rows)
        self.target.metrics.batches.inc()
        self.rows_written += rows
        for p, (_, hi) in ranges.items():
            self.stored[p] = max(hi, self.stored.get(p, -1))
            tp = TopicPartition(self.target.topic, p)
            self.uncommitted[tp] = OffsetAndMetadata(hi + 1, "", -1)
        # If the broker does not answer, the rows are stored and `stored` keeps them from
        # being inserted twice; the offsets go with the next batch's commit.
        if commit_bounded(self.consumer, dict(self.uncommitted), self.target.name):
            self.uncommitted.clear()

    def _insert_until_stored(self, pieces: list[Piece], token: str) -> list[Piece] | None:
        """Insert, retrying with backoff while ClickHouse is away; the pieces stored, or None
        if stopped first (repeats and pieces a failed insert did store are left out).

        After the first refusal the rows are validated once: unreadable ones are
        dead-lettered and the rest go at once; if all are readable, ClickHouse is away.
        """
        failures = 0
        while True:
            try:
                if failures:
                    pieces = self._not_yet_stored(pieces)
                pieces = self.keep_new(pieces)
                body = b"".join(piece.lines for piece in pieces)
                self.store.insert_lines(self.target.table, body, token)
                self.store_ok = True
                return pieces
            except StoreError as exc:
                self.target.metrics.insert_failures.inc()
                failures += 1
                if failures == 1:
                    readable = self.refused(pieces)
                    if readable != pieces:
                        pieces = readable
                        continue
                self.store_ok = False
                delay = RETRY_DELAYS_S[min(failures - 1, len(RETRY_DELAYS_S) - 1)]
                log.warning(
                    "insert of %d records failed, retry in %.1f s: %s", len(pieces), delay, exc
                )
                self.last_turn = time.monotonic()  # waiting on ClickHouse is progress
                if self._stop.wait(delay):
                    return None

    def _not_yet_stored(self, pieces: list[Piece]) -> list[Piece]:
        """Pieces whose offsets are not stored: a failed insert may still have landed."""
        self.stored = self.stored_offsets()
        return [p for p in pieces if p.offset > self.stored.get(p.partition, -1)]
