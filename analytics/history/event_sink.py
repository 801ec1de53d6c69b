"""The events sink: every order event published, into the events table (issue 15)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from kafka import KafkaProducer
from prometheus_client import Counter
from pydantic_core import to_json

from analytics.history import schema
from analytics.history.store import Row, Store
from analytics.history.topic_sink import Piece, SinkMetrics, SinkTarget, TopicSink
from analytics.settings import AnalyticsSettings
from disparo.accounts import MAX_SEARCH_VALUE_CHARS
from disparo.errors import InvalidMessage
from disparo.matching import MISSING, as_text, field_value, filter_fields
from disparo.schemas import OrderEvent, now_utc, parse_event
from disparo.topics import MAX_EVENT_BYTES, Topics

METRICS = SinkMetrics(
    Counter("disparo_event_sink_rows_total", "Order events stored in ClickHouse by the sink."),
    Counter("disparo_event_sink_batches_total", "Inserts the events sink made into ClickHouse."),
    Counter(
        "disparo_event_sink_insert_failures_total",
        "Inserts of order events ClickHouse refused or lost; each is retried.",
    ),
)
# A record time set by a raw Kafka producer is kept within the retained days, so that one
# odd timestamp cannot open a partition per day (ClickHouse refuses a batch touching more
# than 100); events of our own producers carry the time they were published.
_LATEST_AHEAD = timedelta(minutes=5)


def published_at(timestamp_ms: int, now: datetime) -> datetime:
    """The record's time in Kafka, clamped to the retained days up to a little past now."""
    at = datetime.fromtimestamp(max(timestamp_ms, 0) / 1000, UTC)
    oldest = now - timedelta(days=schema.RETENTION_DAYS)
    return min(max(at, oldest), now + _LATEST_AHEAD)


def search_values(event: OrderEvent, paths: Sequence[str]) -> dict[str, str]:
    """The event's value at each of its account's search keys, as text (up to 200 chars)."""
    found = {}
    for path in paths:
        value = field_value(event, path)
        text = None if value is MISSING else as_text(value)
        if text and len(text) <= MAX_SEARCH_VALUE_CHARS:
            found[path] = text
    return found


def event_row(
    event: OrderEvent,
    at: datetime,
    partition: int,
    offset: int,
    search_keys: Sequence[str] = (),
    rule_ids: Sequence[int] = (),
) -> Row:
    """The events-table row of one order event read at a Kafka partition and offset."""
    return {
        "published_at": at,
        "event_id": str(event.event_id),
        "event_type": event.event_type,
        "order_id": event.order_id,
        "order_status": event.order_status or "",
        "occurred_at": event.occurred_at,
        "account_id": event.account_id,
        "fields": filter_fields(event),
        "search_values": search_values(event, search_keys),
        "event_json": event.model_dump_json(),
        "kafka_partition": partition,
        "kafka_offset": offset,
        "rule_ids": list(rule_ids),
    }


class EventSink(TopicSink):
    """Consumes `order-events` in a group of its own; bad records are the dispatcher's to
    dead-letter (it reads the same ones), so they are only skipped here."""

    def __init__(
        self,
        settings: AnalyticsSettings,
        store: Store,
        producer: KafkaProducer,
        search_keys: Callable[[str], Sequence[str]] = lambda _: (),
        matched: Callable[[OrderEvent, datetime], Sequence[int]] = lambda *_: (),
    ) -> None:
        self.search_keys = search_keys  # an account's search keys, as its view has them now
        self.matched = matched  # the rules an event matches (analytics.history.matched_rules)
        target = SinkTarget(
            name="events",
            topic=Topics(settings.topic_prefix).order_events,
            group=settings.event_sink_group,
            table=schema.EVENTS_TABLE,
            metrics=METRICS,
        )
        super().__init__(settings, store, producer, target)

    def pieces_of(self, records: list[Any]) -> list[Piece]:
        pieces, now = [], now_utc()
        for r in records:
            if r.value is None or len(r.value) > MAX_EVENT_BYTES:
                continue
            try:
                event = parse_event(r.value)
            except InvalidMessage:
                continue
            at, keys = published_at(r.timestamp, now), self.search_keys(event.account_id)
            matched = self.matched(event, at)
            row = event_row(event, at, r.partition, r.offset, keys, matched)
            pieces.append(Piece(r, to_json(row) + b"\n"))
        return pieces
