"""The outcomes sink: batches attempt outcomes from Kafka into the attempts table."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from kafka import KafkaProducer
from prometheus_client import Counter

from analytics.history import queries, schema
from analytics.history.store import Row, Store
from analytics.history.topic_sink import SinkMetrics, SinkTarget, TopicSink
from analytics.settings import AnalyticsSettings
from disparo.errors import InvalidMessage
from disparo.schemas import AttemptOutcome, parse_outcome
from disparo.topics import Topics

log = logging.getLogger(__name__)
ROWS = Counter("disparo_sink_rows_total", "Attempt rows written to ClickHouse by the sink.")
BATCHES = Counter("disparo_sink_batches_total", "Inserts the sink made into ClickHouse.")
INSERT_FAILURES = Counter(
    "disparo_sink_insert_failures_total", "Inserts ClickHouse refused or lost; each is retried."
)
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


class OutcomeSink(TopicSink):
    """Consumes `outcomes` into the attempts table; a repeated attempt is stored once."""

    def __init__(self, settings: AnalyticsSettings, store: Store, producer: KafkaProducer) -> None:
        target = SinkTarget(
            name="sink",
            topic=Topics(settings.topic_prefix).outcomes,
            group=settings.sink_group,
            table=schema.TABLE,
            metrics=SinkMetrics(ROWS, BATCHES, INSERT_FAILURES),
        )
        super().__init__(settings, store, producer, target)
        # Told when stored attempts include a 410 Gone (the held keeper pauses such rules).
        self.on_gone: Callable[[], None] = lambda: None

    def after_store(self, rows: list[Row]) -> None:
        if any(r["http_status"] == 410 and not r["manual"] and r["rule_id"] > 0 for r in rows):
            self.on_gone()

    def rows_of(self, records: list[Any]) -> list[Row]:
        rows = []
        for r in records:
            try:
                rows.append(row_of(parse_outcome(r.value), r.partition, r.offset))
            except InvalidMessage as exc:
                self.dead_letters.send(r, exc.reason, "invalid_outcome")
        return rows

    def keep_new(self, rows: list[Row]) -> list[Row]:
        return self._first_of_each_attempt(rows)

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
        stored = {str(r["attempt_id"]) for r in self.store.check(sql, params)}
        kept = [row for key, row in first.items() if key not in stored]
        if len(kept) < len(rows):
            REPEATS.inc(len(rows) - len(kept))
            log.info("%d repeated attempt(s) not stored again", len(rows) - len(kept))
        return kept
