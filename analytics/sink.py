"""The outcomes sink: batches attempt outcomes from Kafka into the attempts table."""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from datetime import timedelta
from typing import Any

from kafka import ConsumerRebalanceListener, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata
from prometheus_client import Counter

from analytics import queries, schema
from analytics.errors import StoreError
from analytics.settings import AnalyticsSettings
from analytics.store import Row, Store
from disparo import failpoints
from disparo.consumer import (
    COMMIT_TIMEOUT_S,
    commit_bounded,
    group_consumer,
    plain_consumer,
    subscribe_when_ready,
)
from disparo.dead_letter import DeadLetters
from disparo.errors import InvalidMessage, KafkaUnavailable
from disparo.schemas import AttemptOutcome, parse_outcome
from disparo.topics import Topics

log = logging.getLogger(__name__)
ROWS = Counter("disparo_sink_rows_total", "Attempt rows written to ClickHouse by the sink.")
BATCHES = Counter("disparo_sink_batches_total", "Inserts the sink made into ClickHouse.")
INSERT_FAILURES = Counter(
    "disparo_sink_insert_failures_total", "Inserts ClickHouse refused or lost; each is retried."
)
RETRY_DELAYS_S = (0.5, 1.0, 2.0, 5.0, 10.0)  # between retries of one failed insert
REPEATS = Counter(
    "disparo_sink_repeats_total",
    "Outcomes not stored because their attempt already has a row (a repeated POST).",
)
# A worker that dies before committing has its jobs delivered again by the next owner,
# seconds to minutes later, under the same attempt id: look that far back for the first row.
REPEAT_WINDOW = timedelta(hours=1)


def row_of(outcome: AttemptOutcome, partition: int, offset: int) -> Row:
    """The attempts-table row of one outcome read at a Kafka partition and offset."""
    return {
        "dispatched_at": outcome.dispatched_at,
        "attempt_id": outcome.attempt_id,
        "dispatch_id": outcome.dispatch_id,
        "attempt": outcome.attempt,
        "manual": outcome.manual,
        "final": outcome.final,
        "order_id": outcome.order_id,
        "order_status": outcome.order_status or "",
        "event_id": outcome.event_id,
        "event_type": outcome.event_type,
        "rule_id": outcome.rule_id,
        "url": outcome.url,
        "status": outcome.status,
        "reason": outcome.reason,
        "http_status": outcome.http_status or 0,
        "error": outcome.error or "",
        "duration_ms": outcome.duration_ms,
        "request_excerpt": outcome.request_excerpt,
        "response_excerpt": outcome.response_excerpt,
        "kafka_partition": partition,
        "kafka_offset": offset,
        "retry_tier": outcome.retry_tier or "",
        "event_json": outcome.event.model_dump_json() if outcome.event else "",
        "request_headers": json.dumps(outcome.request_headers) if outcome.request_headers else "",
        "account_id": outcome.account_id,
    }


def dedup_token(ranges: dict[int, tuple[int, int]]) -> str:
    """A token naming exactly which offsets a batch holds, so a retried insert is dropped."""
    text = ",".join(f"{p}:{a}-{b}" for p, (a, b) in sorted(ranges.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


class _NoteAssignment(ConsumerRebalanceListener):  # type: ignore[misc]
    """Flags a new assignment; it runs inside `poll()`, which handles the flag right after."""

    def __init__(self, sink: OutcomeSink) -> None:
        self.sink = sink

    def on_partitions_revoked(self, revoked: Any) -> None:
        return None

    def on_partitions_assigned(self, assigned: Any) -> None:
        self.sink.assignment_changed = True


class OutcomeSink:
    """Consumes `outcomes`, inserts batches, commits offsets after each insert.

    `run()`'s thread owns the consumer: it creates, polls, commits and closes it. Other
    threads read `assigned` and `last_turn` only.
    """

    def __init__(self, settings: AnalyticsSettings, store: Store, producer: KafkaProducer) -> None:
        self.settings = settings
        self.store = store
        self.producer = producer
        self.topics = Topics(settings.topic_prefix)
        self.dead_letters = DeadLetters(producer, self.topics.dead_letter, "sink")
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

    def _consumer(self) -> KafkaConsumer:
        consumer = group_consumer(
            self.settings,
            self.settings.sink_group,
            "disparo-sink",
            max_poll_records=self.settings.sink_batch,
            fetch_min_bytes=256 * 1024,
            fetch_max_wait_ms=100,
        )
        subscribe_when_ready(consumer, [self.topics.outcomes], _NoteAssignment(self))
        return consumer

    def stored_offsets(self) -> dict[int, int]:
        """The highest Kafka offset stored per outcomes partition."""
        rows = self.store.select(
            f"SELECT kafka_partition AS p, max(kafka_offset) AS o "
            f"FROM {self.store.database}.{schema.TABLE} GROUP BY kafka_partition"
        )
        return {int(r["p"]): int(r["o"]) for r in rows}

    def _stored_and_still_in_topic(self) -> dict[int, int]:
        """Stored offsets, minus partitions whose topic was recreated since (ends went back)."""
        stored = self.stored_offsets()
        tps = [TopicPartition(self.topics.outcomes, p) for p in stored]
        try:
            ends = self._end_offsets(tps) if tps else {}
        except (KafkaError, KafkaUnavailable) as exc:  # a leader is away: keep them as they are
            log.warning(
                "cannot read the outcomes topic's end offsets (%s); skipping the check", exc
            )
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
        probe = plain_consumer(self.settings, "disparo-sink-probe")
        try:
            ends: dict[TopicPartition, int] = probe.end_offsets(tps)
            return ends
        finally:
            probe.close()

    def run(self) -> None:
        """Consume and insert until `stop()`; the last partial batch is flushed."""
        self.consumer = self._consumer()
        pending: list[Any] = []
        started = time.monotonic()
        while not self._stop.is_set():
            self.last_turn = time.monotonic()
            polled = self.consumer.poll(timeout_ms=100, max_records=self.settings.sink_batch)
            self.assigned = frozenset(self.consumer.assignment())
            if self.assignment_changed:
                self.assignment_changed = False
                self.stored = self._stored_and_still_in_topic()
            for records in polled.values():
                pending.extend(records)
            full = len(pending) >= self.settings.sink_batch
            due = time.monotonic() - started >= self.settings.sink_linger_ms / 1000
            if pending and (full or due):
                self.flush(pending)
                pending = []
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
        """True once the sink holds partitions of the outcomes topic and can write."""
        return not self._stop.is_set() and self.store_ok and bool(self.assigned)

    def stop(self) -> None:
        """Ask `run()` to flush and return."""
        self._stop.set()

    def flush(self, records: list[Any]) -> None:
        """Insert one batch (de-duplicated by its offsets), then commit those offsets."""
        rows: list[Row] = []
        ranges: dict[int, tuple[int, int]] = {}
        for r in records:
            lo, hi = ranges.get(r.partition, (r.offset, r.offset))
            ranges[r.partition] = (min(lo, r.offset), max(hi, r.offset))
            if r.offset <= self.stored.get(r.partition, -1):
                continue
            try:
                rows.append(row_of(parse_outcome(r.value), r.partition, r.offset))
            except InvalidMessage as exc:
                self.dead_letters.send(r, exc.reason, "invalid_outcome")
        stored = self._insert_until_stored(rows, dedup_token(ranges))
        if stored is None:
            return  # stopping while ClickHouse is away: the offsets stay uncommitted
        rows = stored
        if rows:
            failpoints.hit("sink.after_insert")  # between the insert and the offset commit
        self.producer.flush(timeout=COMMIT_TIMEOUT_S)
        ROWS.inc(len(rows))
        BATCHES.inc()
        self.rows_written += len(rows)
        for p, (_, hi) in ranges.items():
            self.stored[p] = max(hi, self.stored.get(p, -1))
        for p, (_, hi) in ranges.items():
            tp = TopicPartition(self.topics.outcomes, p)
            self.uncommitted[tp] = OffsetAndMetadata(hi + 1, "", -1)
        # If the broker does not answer, the rows are stored and `stored` keeps them from
        # being inserted twice; the offsets go with the next batch's commit.
        if commit_bounded(self.consumer, dict(self.uncommitted), "sink"):
            self.uncommitted.clear()

    def _insert_until_stored(self, rows: list[Row], token: str) -> list[Row] | None:
        """Insert, retrying with backoff while ClickHouse is away; the rows stored, or None
        if stopped first (repeats and rows a failed insert did store are left out)."""
        failures = 0
        while True:
            try:
                if failures:
                    rows = self._not_yet_stored(rows)
                rows = self._first_of_each_attempt(rows)
                self.store.insert(schema.TABLE, rows, token)
                self.store_ok = True
                return rows
            except StoreError as exc:
                INSERT_FAILURES.inc()
                self.store_ok = False
                delay = RETRY_DELAYS_S[min(failures, len(RETRY_DELAYS_S) - 1)]
                failures += 1
                log.warning("insert of %d rows failed, retry in %.1f s: %s", len(rows), delay, exc)
                self.last_turn = time.monotonic()  # waiting on ClickHouse is progress
                if self._stop.wait(delay):
                    return None

    def _first_of_each_attempt(self, rows: list[Row]) -> list[Row]:
        """Rows whose attempt has no row yet, in the table or earlier in the batch."""
        if not rows:
            return rows
        first: dict[str, Row] = {}
        for row in rows:
            first.setdefault(str(row["attempt_id"]), row)
        times = [row["dispatched_at"] for row in rows]
        sql, params = queries.stored_attempts(
            self.store.database, list(first), min(times) - REPEAT_WINDOW, max(times)
        )
        stored = {str(r["attempt_id"]) for r in self.store.select(sql, params)}
        kept = [row for key, row in first.items() if key not in stored]
        if len(kept) < len(rows):
            REPEATS.inc(len(rows) - len(kept))
            log.info("%d repeated attempt(s) not stored again", len(rows) - len(kept))
        return kept

    def _not_yet_stored(self, rows: list[Row]) -> list[Row]:
        """Rows whose offsets are not stored: a failed insert may still have landed."""
        self.stored = self.stored_offsets()
        return [r for r in rows if r["kafka_offset"] > self.stored.get(r["kafka_partition"], -1)]
