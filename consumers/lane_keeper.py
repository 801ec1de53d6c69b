"""The worker's order lanes for the partitions it owns, and which of them must be written.

No I/O: the worker reads lanes back with `LaneStore` and writes the `snapshot` at commit,
as batch records (consumers/lane_log.py).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import NamedTuple

from consumers import metrics
from consumers.attempt import Attempt
from consumers.lane_log import Emptied, Holders, StoredLanes, batch_key, chunks, encode_batch
from consumers.lanes import Lane, LaneKey, Pointer, Verdict
from disparo.lifecycle import Lifecycle, holds_after
from disparo.schemas import NOTIFICATIONS_RULE_ID, DispatchJob

# A record to write: (partition, key, value or None for a tombstone).
LaneWrite = tuple[int, bytes, bytes | None]
SWEEP_PER_SNAPSHOT = 2000  # lanes checked for expiry per snapshot


class Lanes(NamedTuple):
    """What a job's rule asks of its order lane (a tuple: made twice per such job)."""

    ordered: bool
    supersede: bool
    guard: Lifecycle | None = None  # status_guard forward_only: the account's lifecycle


def lane_rules(job: DispatchJob, lifecycle: Lifecycle | None = None) -> Lanes | None:
    """The lane options of a job, or None when its lane is not involved (manual, plain).

    `lifecycle` is the job's account's; a guarded rule of an account without one is unguarded.
    """
    target = job.target
    if job.manual or target.deleted or job.rule.rule_id == NOTIFICATIONS_RULE_ID:
        return None
    ordered = target.ordering == "per_order"
    guard = lifecycle if target.status_guard == "forward_only" else None
    if not ordered and not target.supersede and guard is None:
        return None
    return Lanes(ordered, target.supersede, guard)


class LaneKeeper:
    """Order lanes of the owned partitions; finished lanes are kept `keep_s` for replays."""

    def __init__(self, keep_s: float, guard_keep_s: float | None = None) -> None:
        self.keep_s = keep_s
        # A lane that remembers a delivered status is kept as long as late scans may come.
        self.guard_keep_s = max(keep_s, guard_keep_s or keep_s)
        self.lanes: dict[LaneKey, Lane] = {}
        self.holders = Holders()  # the records holding the stored lanes
        self.dirty: set[LaneKey] = set()
        self.partitions: set[int] = set()
        self._sweep: list[LaneKey] = []  # lanes still to check for expiry this round

    def gain(self, partitions: Iterable[int], restored: StoredLanes) -> list[Pointer]:
        """Take over partitions with their stored lanes; heads to restart from their records."""
        self.partitions.update(partitions)
        self.lanes.update(restored.lanes)
        self.holders.merge(restored.holders)
        return [lane.start for lane in restored.lanes.values() if lane.start is not None]

    def lose(self, partitions: Iterable[int]) -> None:
        """Forget partitions another worker now owns (it reads their lanes back)."""
        lost = set(partitions) & self.partitions
        if not lost:  # called after every poll: most of the time nothing moved
            return
        self.partitions -= lost
        for key in [k for k, lane in self.lanes.items() if lane.partition in lost]:
            del self.lanes[key]
            self.dirty.discard(key)
        self.holders.forget(lost)

    def admit(
        self, job: DispatchJob, rules: Lanes, partition: int, pointer: Pointer | None
    ) -> Verdict:
        """The lane's verdict on a job; a restarted head (`pointer` None) needs its lane."""
        key = (job.target.rule_id, job.event.order_id)
        lane = self.lanes.get(key)
        if lane is None:
            if partition not in self.partitions or pointer is None:
                verdict = Verdict.SKIP  # not ours (any more): its owner restarts it
                metrics.bound(metrics.LANE_JOBS, verdict.value).inc()
                return verdict
            if not rules.ordered:  # nothing done, delivered or waiting: it goes, lane-less
                metrics.bound(metrics.LANE_JOBS, Verdict.DELIVER.value).inc()
                return Verdict.DELIVER
            lane = self.lanes[key] = Lane(key[0], key[1], partition)
        verdict = lane.admit(
            job.dispatch_id, job.attempt, job.seq, rules.ordered, rules.supersede, pointer
        )
        if verdict is Verdict.WAIT:
            self.dirty.add(key)
        self._drop_if_unneeded(key, lane)
        metrics.bound(metrics.LANE_JOBS, verdict.value).inc()
        return verdict

    def settled(
        self,
        job: DispatchJob,
        rules: Lanes,
        outcome: Attempt,
        partition: int,
        now: float | None = None,
    ) -> Pointer | None:
        """Record an attempt's end; the next waiting dispatch, when that frees the lane."""
        key = (job.target.rule_id, job.event.order_id)
        lane = self.lanes.get(key)
        delivered = outcome.status == "success"
        if lane is None and delivered and rules.guard is not None and partition in self.partitions:
            lane = self.lanes[key] = Lane(key[0], key[1], partition)  # it holds the status now
        if not outcome.final:
            if lane is None and partition in self.partitions:  # an unordered rule's retry
                lane = self.lanes[key] = Lane(key[0], key[1], partition)
            if lane is not None:
                lane.retried(job.dispatch_id, outcome.attempt + 1, rules.ordered)
                self.dirty.add(key)
            return None
        if lane is not None and delivered and rules.guard is not None:
            holds = holds_after(rules.guard, lane.customer_status, job.event.order_status)
            if holds != lane.customer_status:
                lane.customer_status = holds
                self.dirty.add(key)
        return self.ended(key, job.dispatch_id, job.seq, delivered, now)

    def customer_status(self, job: DispatchJob) -> str | None:
        """The status the customer holds for the job's (rule, order), as far as known here."""
        lane = self.lanes.get((job.target.rule_id, job.event.order_id))
        return None if lane is None else lane.customer_status

    def ended(
        self,
        key: LaneKey,
        dispatch_id: str,
        seq: int | None,
        delivered: bool,
        now: float | None = None,
    ) -> Pointer | None:
        """A dispatch ended (delivered, failed for good, superseded or lost): the next, if any."""
        lane = self.lanes.get(key)
        if lane is None:
            return None
        following = lane.finished(dispatch_id, seq, delivered, now or time.time())
        if self.holders.stored(key) or following is not None:
            self.dirty.add(key)
        self._drop_if_unneeded(key, lane)
        return following

    def deferred(self, job: DispatchJob, rules: Lanes) -> None:
        """The job was parked in a retry topic without an attempt: that record carries it."""
        key = (job.target.rule_id, job.event.order_id)
        lane = self.lanes.get(key)
        if lane is not None:
            lane.retried(job.dispatch_id, job.attempt, rules.ordered)
            self.dirty.add(key)

    def snapshot(self, now: float | None = None) -> list[LaneWrite]:
        """The records to write now: each partition's changed lanes as batches, then
        tombstones for the records that no longer hold any lane."""
        now = now or time.time()
        emptied = self._sweep_expired(now)
        # A record that lost lanes and holds few now: those few are written again with the
        # changed ones, so the record can go.
        self.dirty.update(k for k in self.holders.sparse() if k in self.lanes)
        by_partition: dict[int, list[Lane]] = {}
        for key in self.dirty:
            lane = self.lanes[key]
            by_partition.setdefault(lane.partition, []).append(lane)
        self.dirty.clear()
        writes: list[LaneWrite] = []
        for partition, lanes in by_partition.items():
            for chunk in chunks(lanes):
                record = batch_key()
                writes.append((partition, record, encode_batch(chunk)))
                emptied += self.holders.written(record, partition, [lane.key for lane in chunk])
        # Tombstones after the batches that took their lanes over (same partition, in order).
        writes += [(partition, record, None) for partition, record in emptied]
        return writes

    def _sweep_expired(self, now: float) -> list[Emptied]:
        """Forget a slice of the lanes idle past their keep time; the records now empty."""
        # A few thousand lanes are checked for expiry per commit, not all of them: a guarded
        # rule keeps a lane per order for days, and the commit cycle runs several times a
        # second. Every lane is checked again within (lanes / SWEEP_PER_SNAPSHOT) commits.
        emptied: list[Emptied] = []
        if not self._sweep:
            self._sweep = list(self.lanes)
        for _ in range(min(SWEEP_PER_SNAPSHOT, len(self._sweep))):
            key = self._sweep.pop()
            lane = self.lanes.get(key)
            if lane is None:
                continue
            keep_s = self.keep_s if lane.customer_status is None else self.guard_keep_s
            if lane.idle_since is not None and now - lane.idle_since > keep_s:
                del self.lanes[key]
                self.dirty.discard(key)
                emptied += self.holders.dropped(key)
        return emptied

    def _drop_if_unneeded(self, key: LaneKey, lane: Lane) -> None:
        """A lane never written and idle again holds nothing worth keeping."""
        unneeded = not lane.busy() and lane.customer_status is None
        if unneeded and not self.holders.stored(key) and key not in self.dirty:
            del self.lanes[key]
