"""Attempt rows as they are written, for the screen's live history: one reader per process.

The rows come from the outcomes topic, not the store: every API process serves its own
streams and needs every row, while the sinks' group splits the topic's partitions between
processes (a process's sink sees only its share), and the store has no column that says
what is new since a moment (rows arrive late and out of `dispatched_at` order: retries,
batches). The reader tails every partition from its end, without a group, and only while
a stream is open. A row may reach a stream a little before the list can page it (the
sink's linger, tens of ms); the page keys rows by attempt id, so a repeat shows once.

Bounds: `MAX_STREAMS` per process, `MAX_STREAMS_PER_KEY` per key (429 beyond), and
`MAX_QUEUED` rows waiting for a slow client, past which its stream is ended (it
reconnects and reloads the list) rather than buffered without end.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Any

from kafka import TopicPartition

from analytics.control.topic_tail import TopicTail
from analytics.errors import RateLimited
from analytics.history.schema import ITEM_FIELDS
from analytics.history.views import item_of
from disparo.errors import InvalidMessage
from disparo.outcome_batch import attempt_row, checked_row, is_batch, lines_of
from disparo.schemas import parse_outcome
from disparo.settings import KernelSettings

MAX_STREAMS = 100  # open streams per process
MAX_STREAMS_PER_KEY = 5  # open streams per API key (a few tabs)
MAX_QUEUED = 2000  # rows waiting for one client before its stream is ended
Accepts = Callable[[dict[str, Any]], bool]


class Stream:
    """One client's stream: the rows its filter accepts, queued until it reads them."""

    def __init__(self, key_id: str, accepts: Accepts, loop: asyncio.AbstractEventLoop) -> None:
        self.key_id = key_id
        self.accepts = accepts
        self.loop = loop
        self.dropped = False  # too slow: MAX_QUEUED rows waited
        self._rows: deque[dict[str, Any]] = deque()
        self._ready = asyncio.Event()

    def offer(self, rows: list[dict[str, Any]]) -> None:
        """Queue rows (on the stream's loop); past `MAX_QUEUED` the stream is ended."""
        if self.dropped:
            return
        if len(self._rows) + len(rows) > MAX_QUEUED:
            self.dropped = True
            self._rows.clear()
        else:
            self._rows.extend(rows)
        self._ready.set()

    async def next_rows(self, wait_s: float) -> list[dict[str, Any]]:
        """The rows queued, waiting up to `wait_s` for some (none: time for a keep-alive)."""
        if not self._rows and not self.dropped:
            try:
                await asyncio.wait_for(self._ready.wait(), wait_s)
            except TimeoutError:
                return []
        self._ready.clear()
        rows = list(self._rows)
        self._rows.clear()
        return rows


class LiveFeed(TopicTail):
    """Fans the outcomes topic's new rows out to the open streams whose filters take them."""

    def __init__(self, settings: KernelSettings, topic: str) -> None:
        super().__init__(settings, topic, "live-feed")
        self._streams: list[Stream] = []

    def listening(self) -> bool:
        return bool(self._streams)

    def open(self, key_id: str, accepts: Accepts) -> Stream:
        """A new stream for the calling loop; RateLimited past the process's or key's bound."""
        stream = Stream(key_id, accepts, asyncio.get_running_loop())
        with self._cond:
            if len(self._streams) >= MAX_STREAMS:
                raise RateLimited(f"{MAX_STREAMS} live streams are open on this server", 5)
            if sum(s.key_id == key_id for s in self._streams) >= MAX_STREAMS_PER_KEY:
                raise RateLimited(
                    f"this key has {MAX_STREAMS_PER_KEY} live streams open already; "
                    "close a tab showing the history",
                    5,
                )
            self._streams.append(stream)
            self._cond.notify_all()
        return stream

    def close(self, stream: Stream) -> None:
        with self._cond:
            if stream in self._streams:
                self._streams.remove(stream)

    def take(self, polled: dict[TopicPartition, list[Any]]) -> None:
        rows = [row for records in polled.values() for r in records for row in _rows_of(r)]
        if not rows:
            return
        with self._cond:
            streams = list(self._streams)
        for stream in streams:
            taken = [row for row in rows if stream.accepts(row)]
            if taken:
                stream.loop.call_soon_threadsafe(stream.offer, taken)


def _rows_of(record: Any) -> list[dict[str, Any]]:
    """The list items of one outcomes record (a batch or a single attempt); bad ones none."""
    try:
        if is_batch(record.headers):
            lines = lines_of(record.value, record.headers)
            full = [row for row in map(_checked, lines) if row is not None]
        else:
            full = [attempt_row(parse_outcome(record.value))]
    except InvalidMessage:
        return []  # the sink dead-letters the record with the reason
    return [item_of({k: row[k] for k in ITEM_FIELDS}) for row in full]


def _checked(line: bytes) -> dict[str, Any] | None:
    try:
        return checked_row(line)
    except InvalidMessage:
        return None  # the sink dead-letters this row with its reason; the others are good
