"""The worker's outcome batches: attempt rows kept per job partition until the next commit.

A commit writes each partition's rows as batch records (design.md, "Outcome batches") and
commits the jobs' offsets only once those records are acknowledged. A batch is marked
`replay` when one of its attempts may repeat an attempt an earlier owner of its jobs made:
the sink looks such attempts up before storing them, and stores the rest without a lookup.
"""

from __future__ import annotations

import uuid
from collections.abc import Hashable

from disparo.outcome_batch import Headers, batch_headers, split

# Attempt ids of replayed jobs not yet recorded (a job parked for later keeps its mark);
# past this many the oldest marks go, and their batches lean on the sink's owner check.
MAX_MARKS = 100_000


class Replays:
    """Which polled jobs an earlier owner of their partition may already have attempted.

    A previous owner read at most up to the partition's end as this worker first sees it,
    so jobs below that mark may repeat; so may jobs read again after a rewind (a rebalance
    that handed the partition back, from its committed offset).
    """

    def __init__(self) -> None:
        self._below: dict[Hashable, int] = {}
        self._last: dict[Hashable, int] = {}

    def may_repeat(self, tp: Hashable, offset: int, end: int | None) -> bool:
        """Note a record taken at `offset` (`end`: the partition's end as last fetched)."""
        last = self._last.get(tp)
        self._last[tp] = offset
        if tp not in self._below or (last is not None and offset <= last):
            if end is None:
                self._below.pop(tp, None)
                return True
            self._below[tp] = max(end, self._below.get(tp, 0))
        return offset < self._below[tp]

    def keep_only(self, owned: set[Hashable]) -> None:
        """Forget partitions no longer owned (a later owner starts afresh)."""
        for tp in [tp for tp in self._last if tp not in owned]:
            self._last.pop(tp, None)
            self._below.pop(tp, None)


class OutcomeBatches:
    """Row lines per job partition, and which partitions' batches hold possible repeats."""

    def __init__(self, owner: str | None = None) -> None:
        self.owner = owner or uuid.uuid4().hex[:16]
        self._lines: dict[int, list[bytes]] = {}
        self._replay: set[int] = set()
        self._marks: dict[str, None] = {}

    def mark(self, attempt_id: str) -> None:
        """The job of this attempt may have been attempted by an earlier owner."""
        self._marks[attempt_id] = None
        if len(self._marks) > MAX_MARKS:
            del self._marks[next(iter(self._marks))]

    def add(self, partition: int, attempt_id: str, line: bytes) -> None:
        """Keep one attempt's row line for its job partition's next batch."""
        self._lines.setdefault(partition, []).append(line)
        if self._marks and self._marks.pop(attempt_id, 0) is None:
            self._replay.add(partition)

    def take(self) -> list[tuple[bytes, bytes, Headers]]:
        """The records to write now (key, value, headers); the kept rows are handed over."""
        lines, self._lines = self._lines, {}
        replay, self._replay = self._replay, set()
        records: list[tuple[bytes, bytes, Headers]] = []
        for partition, rows in lines.items():
            key = f"jobs-{partition}".encode()
            for value in split(rows):  # each record its own batch id
                records.append((key, value, batch_headers(self.owner, partition in replay)))
        return records

    def pending(self) -> bool:
        """Whether any row waits for the next batch (safe to ask from another thread)."""
        return bool(self._lines)

    def __len__(self) -> int:
        return sum(len(rows) for rows in self._lines.values())
