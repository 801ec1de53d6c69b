"""Which offsets may be committed while deliveries finish out of order."""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable, Iterable


class OffsetTracker:
    """Per partition, the offsets taken and finished; commits only a finished prefix.

    Deliveries finish in any order (a slow endpoint beside a fast one), but a committed offset
    says every record before it is done, so the commit point is the first unfinished offset.
    """

    def __init__(self) -> None:
        self._taken: dict[Hashable, deque[int]] = {}
        self._finished: dict[Hashable, set[int]] = {}

    def take(self, tp: Hashable, offset: int) -> None:
        """Note a record handed to a delivery (offsets of a partition arrive in order).

        An offset at or below the last one taken means the partition was handed back after a
        rebalance and is read again from its commit point: its old bookkeeping is dropped.
        """
        taken = self._taken.get(tp)
        if taken and offset <= taken[-1]:
            self.forget([tp])
        self._taken.setdefault(tp, deque()).append(offset)
        self._finished.setdefault(tp, set())

    def finish(self, tp: Hashable, offset: int) -> None:
        """Note that a record's results are sent."""
        if tp in self._finished:
            self._finished[tp].add(offset)

    def committable(self) -> dict[Hashable, int]:
        """Next offsets to commit for partitions whose finished prefix grew since last asked."""
        out = {}
        for tp, taken in self._taken.items():
            finished = self._finished[tp]
            last = None
            while taken and taken[0] in finished:
                last = taken.popleft()
                finished.discard(last)
            if last is not None:
                out[tp] = last + 1
        return out

    def forget(self, tps: Iterable[Hashable]) -> None:
        """Drop partitions this worker no longer owns."""
        for tp in tps:
            self._taken.pop(tp, None)
            self._finished.pop(tp, None)

    @property
    def in_flight(self) -> int:
        """Records taken and not yet committable."""
        return sum(len(t) for t in self._taken.values())
