"""How the outcomes sink stores each attempt once without a lookup on every insert.

An attempt is reported twice only when a second worker redoes jobs the first one attempted
but did not commit (a crash, a rebalance, a worker that kept running after losing its
partitions). Batches say which worker wrote them and are keyed by job partition, so every
report of one job partition's attempts reaches one sink partition in the order written. The
sink looks attempts up in the table only for batches that may repeat: marked `replay` by
their worker, the first of their job partition this sink sees, one it saw before (a batch
written twice), or written while another worker also wrote that job partition recently.
Everything else goes straight in.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from datetime import datetime, timedelta

from prometheus_client import Counter

from analytics.history import queries
from analytics.history.store import Store
from analytics.history.topic_sink import Piece
from disparo.errors import InvalidMessage
from disparo.outcome_batch import loose_row

log = logging.getLogger(__name__)
REPEATS = Counter(
    "disparo_sink_repeats_total",
    "Outcomes not stored because their attempt already has a row (a repeated POST).",
)
LOOKUPS = Counter(
    "disparo_sink_repeat_lookups_total",
    "Inserts before which the sink looked attempts up in the table (batches that may repeat).",
)
# A worker that dies before committing has its jobs delivered again by the next owner,
# seconds to minutes later, under the same attempt id: look that far back for the first row.
REPEAT_WINDOW = timedelta(hours=1)
# A worker that lost its partitions (a rebalance, or a stall past its session) writes the
# records of its deliveries in flight once it runs again, each within its rule's timeout
# (at most 60 s); its first batch after the new owner's is a change of owner, and every
# batch of that job partition is looked up until this long after the last change.
MIXED_OWNERS_S = 120.0
RECENT_BATCHES = 64  # batch ids remembered per job partition (a batch written twice)


class Owners:
    """Per job partition, the worker whose batches this sink saw last."""

    def __init__(self, mixed_s: float = MIXED_OWNERS_S) -> None:
        self.mixed_s = mixed_s
        self._last: dict[bytes, bytes] = {}
        self._mixed_until: dict[bytes, float] = {}
        self._recent: dict[bytes, deque[bytes]] = {}

    def must_check(
        self, key: bytes, owner: bytes, batch_id: bytes, now: float | None = None
    ) -> bool:
        """Whether a batch of this job partition by this owner may repeat stored attempts."""
        now = time.monotonic() if now is None else now
        last = self._last.get(key)
        self._last[key] = owner
        recent = self._recent.setdefault(key, deque(maxlen=RECENT_BATCHES))
        if batch_id in recent:
            return True
        recent.append(batch_id)
        if last is None:  # the first one seen since this sink took its partitions
            return True
        if last != owner:
            self._mixed_until[key] = now + self.mixed_s
            return True
        return now < self._mixed_until.get(key, 0.0)

    def forget(self) -> None:
        """The sink's partitions changed: what another sink saw meanwhile is unknown."""
        self._last.clear()
        self._mixed_until.clear()
        self._recent.clear()


def without_repeats(store: Store, pieces: list[Piece]) -> list[Piece]:
    """The pieces with every attempt stored before, or earlier in these pieces, left out.

    Only pieces marked `check` are looked up in the table; within the batch every attempt
    counts once whatever its piece.
    """
    if not any(piece.check for piece in pieces):
        return pieces
    LOOKUPS.inc()
    split = [(piece, piece.lines.splitlines(keepends=True)) for piece in pieces]
    ids = {line: _attempt(line) for _, lines in split for line in lines}
    asked = [ids[line] for piece, lines in split if piece.check for line in lines]
    stored = _stored(store, [a for a in asked if a is not None])
    seen: set[str] = set()
    kept: list[Piece] = []
    dropped = 0
    for piece, lines in split:
        mine = []
        for line in lines:
            found = ids[line]
            if found is not None and (found[0] in seen or (piece.check and found[0] in stored)):
                dropped += 1
                continue
            if found is not None:
                seen.add(found[0])
            mine.append(line)
        if mine:
            kept.append(Piece(piece.record, b"".join(mine), piece.check))
    if dropped:
        REPEATS.inc(dropped)
        log.info("%d repeated attempt(s) not stored again", dropped)
    return kept


def _attempt(line: bytes) -> tuple[str, datetime] | None:
    """A row line's attempt id and time; None if unreadable (the insert then refuses it)."""
    try:
        row = loose_row(line)
        return str(row["attempt_id"]), datetime.fromisoformat(str(row["dispatched_at"]))
    except (InvalidMessage, ValueError, KeyError):
        return None


def _stored(store: Store, attempts: list[tuple[str, datetime]]) -> set[str]:
    if not attempts:
        return set()
    times = [at for _, at in attempts]
    ids = list(dict.fromkeys(attempt_id for attempt_id, _ in attempts))
    try:
        sql, params = queries.stored_attempts(
            store.database, ids, min(times) - REPEAT_WINDOW, max(times)
        )
    except ValueError:  # an id that is not a UUID: the insert refuses its row
        return set()
    return {str(r["attempt_id"]) for r in store.check(sql, params)}
