"""The outcomes sink: attempt outcomes from Kafka into the attempts table.

Batch records (design.md, "Outcome batches") carry insert-ready rows: the sink adds the two
Kafka columns to each line and hands the bytes to ClickHouse, validating rows only when an
insert is refused. Single-attempt records (older workers, the control plane's own) are
parsed and turned into the same lines.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from kafka import KafkaProducer
from prometheus_client import Counter
from pydantic_core import to_json

from analytics.history import schema
from analytics.history.repeats import Owners, without_repeats
from analytics.history.store import Row, Store
from analytics.history.topic_sink import Piece, SinkMetrics, SinkTarget, TopicSink
from analytics.settings import AnalyticsSettings
from disparo.errors import InvalidMessage
from disparo.outcome_batch import (
    BATCH_FORMAT,
    BATCH_HEADER,
    BATCH_ID_HEADER,
    OWNER_HEADER,
    REPLAY_HEADER,
    attempt_row,
    checked_row,
    header,
    is_batch,
    lines_of,
    loose_row,
)
from disparo.schemas import AttemptOutcome, parse_outcome
from disparo.topics import Topics

log = logging.getLogger(__name__)
ROWS = Counter("disparo_sink_rows_total", "Attempt rows written to ClickHouse by the sink.")
BATCHES = Counter("disparo_sink_batches_total", "Inserts the sink made into ClickHouse.")
INSERT_FAILURES = Counter(
    "disparo_sink_insert_failures_total", "Inserts ClickHouse refused or lost; each is retried."
)
_GONE = b'"http_status":410'


def kafka_columns(partition: int, offset: int) -> dict[str, int]:
    """The two columns every row of one record shares."""
    return {"kafka_partition": partition, "kafka_offset": offset}


def row_of(outcome: AttemptOutcome, partition: int, offset: int) -> Row:
    """The attempts-table row of one outcome read at a Kafka partition and offset."""
    row = {**attempt_row(outcome), **kafka_columns(partition, offset)}
    return {name: row[name] for name, _ in schema.ATTEMPT_COLUMNS}


def with_kafka_columns(lines: bytes, partition: int, offset: int) -> bytes:
    """Batch lines with the Kafka columns added (each line ends with `}` and a newline)."""
    tail = b',"kafka_partition":%d,"kafka_offset":%d}\n' % (partition, offset)
    return lines.replace(b"}\n", tail)


class OutcomeSink(TopicSink):
    """Consumes `outcomes` into the attempts table; a repeated attempt is stored once."""

    def __init__(self, settings: AnalyticsSettings, store: Store, producer: KafkaProducer) -> None:
        target = SinkTarget(
            name="sink",
            topic=Topics(settings.topic_prefix).outcomes,
            group=settings.sink_group,
            table=schema.TABLE,
            metrics=SinkMetrics(ROWS, BATCHES, INSERT_FAILURES),
            batched=True,
        )
        super().__init__(settings, store, producer, target)
        self.owners = Owners()
        # Told when stored attempts include a 410 Gone (the held keeper pauses such rules).
        self.on_gone: Callable[[], None] = lambda: None

    def pieces_of(self, records: list[Any]) -> list[Piece]:
        pieces = []
        for r in records:
            try:
                pieces.append(self._batch(r) if is_batch(r.headers) else self._single(r))
            except InvalidMessage as exc:
                self.dead_letters.send(r, exc.reason, "invalid_outcome")
        return pieces

    def _batch(self, r: Any) -> Piece:
        value = r.value
        if header(r.headers, BATCH_HEADER) != BATCH_FORMAT or not value or value[-2:] != b"}\n":
            lines_of(value, r.headers)  # raises, saying what is wrong
        replay = header(r.headers, REPLAY_HEADER) is not None
        owner = header(r.headers, OWNER_HEADER) or b""
        batch_id = header(r.headers, BATCH_ID_HEADER) or b""
        check = self.owners.must_check(r.key or b"", owner, batch_id) or replay
        return Piece(r, with_kafka_columns(value, r.partition, r.offset), check)

    @staticmethod
    def _single(r: Any) -> Piece:
        row = row_of(parse_outcome(r.value), r.partition, r.offset)
        return Piece(r, to_json(row) + b"\n", check=True)

    def rows_in(self, record: Any) -> int:
        value = record.value
        return value.count(b"\n") if value and is_batch(record.headers) else 1

    def keep_new(self, pieces: list[Piece]) -> list[Piece]:
        return without_repeats(self.store, pieces)

    def refused(self, pieces: list[Piece]) -> list[Piece]:
        """Validate every batch row; dead-letter the records of unreadable ones, keep the rest."""
        readable = []
        for piece in pieces:
            if not is_batch(piece.record.headers):
                readable.append(piece)  # built from a validated outcome
                continue
            good, bad = [], []
            for n, line in enumerate(lines_of(piece.record.value, piece.record.headers), 1):
                try:
                    checked_row(line)
                    good.append(line)
                except InvalidMessage as exc:
                    bad.append(f"row {n}: {exc.reason}")
            if bad:
                reason = f"{len(bad)} unreadable row(s) of a batch; the others are stored: "
                self.dead_letters.send(piece.record, reason + "; ".join(bad), "invalid_outcome")
            if good:
                lines = with_kafka_columns(b"".join(good), piece.partition, piece.offset)
                readable.append(Piece(piece.record, lines, piece.check))
        return readable

    def forget_owners(self) -> None:
        self.owners.forget()

    def after_store(self, pieces: list[Piece]) -> None:
        for piece in pieces:
            if _GONE in piece.lines and any(_gone(line) for line in piece.lines.splitlines()):
                self.on_gone()
                return


def _gone(line: bytes) -> bool:
    """A row of an automatic attempt of a rule answered with 410 Gone."""
    if _GONE not in line:
        return False
    row = loose_row(line)
    return row.get("http_status") == 410 and not row.get("manual") and row.get("rule_id", 0) > 0
