"""What happens to a job before it is sent: held (paused rule), its order lane's verdict,
or the status guard's.

A job hook (consumers/hooks.py): before an attempt it holds a paused rule's job, asks the
job's order lane, then (status-guarded rules) compares the job's order status with the one
the customer holds, which the lane keeps; once an attempt is settled the lane moves on.
Held, superseded and regressed dispatches are recorded, and a lane's next job (read back
from its record) started, through the worker handed to each call.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from kafka import TopicPartition

from consumers import classify, metrics
from consumers.attempt import Attempt
from consumers.delivery import Deliverer
from consumers.hooks import Decision, Host, JobHook, Place, Taken
from consumers.lane_keeper import LaneKeeper, Lanes, LaneWrite, lane_rules
from consumers.lane_log import StoredLanes
from consumers.lane_store import LaneStore
from consumers.lanes import LaneKey, Pointer, Verdict
from consumers.rule_lookup import RuleLookup
from disparo.errors import InvalidMessage
from disparo.lifecycle import Lifecycle, check
from disparo.parking import DeferReason
from disparo.schemas import (
    NOTIFICATIONS_RULE_ID,
    DispatchJob,
    attempt_id_for,
    now_utc,
    parse_job,
)

log = logging.getLogger(__name__)


@dataclass
class Handover:
    """Partitions a poll gained (with their lanes, and heads to restart) or lost."""

    gained: list[int] = field(default_factory=list)
    lost: list[int] = field(default_factory=list)
    restored: StoredLanes = field(default_factory=StoredLanes)
    restarted: list[tuple[LaneKey, Pointer, Any]] = field(default_factory=list)


class OrderGate(JobHook):
    """Paused rules' holds and order-aware rules' lanes, for one worker."""

    def __init__(
        self,
        deliverer: Deliverer,
        rules: RuleLookup,
        store: LaneStore,
        keep_s: float,
        guard_keep_s: float | None = None,
    ) -> None:
        self.deliverer = deliverer
        self.rules = rules
        self.store = store
        self.lanes = LaneKeeper(keep_s, guard_keep_s)
        self.owned: set[int] = set()  # job-topic partitions; the consumer's thread only
        self.releases: set[asyncio.Task[None]] = set()
        self.gone: dict[int, int] = {}  # rule id -> the version whose endpoint answered 410
        self.last_held_at = now_utc()

    def follow(self, owned: set[int]) -> Handover:
        """On the consumer's thread: read back the order lanes of partitions just gained.

        The range assignor gives one worker the same partition of every job topic, so a
        partition number names one set of orders and their lanes.
        """
        handover = Handover(sorted(owned - self.owned), sorted(self.owned - owned))
        self.owned = owned
        if handover.gained:
            handover.restored = self.store.restore(handover.gained)
            lanes = handover.restored.lanes
            waiting = sum(len(lane.waiting) for lane in lanes.values())
            log.info(
                "read back %d order lanes (%d jobs waiting) in %d records of partitions %s",
                len(lanes), waiting, len(handover.restored.holders.records), handover.gained,
            )  # fmt: skip
            for key, lane in lanes.items():
                if lane.start is not None:
                    record = self.store.fetch_now(lane.start)
                    handover.restarted.append((key, lane.start, record))
        return handover

    def take_over(self, host: Host, handover: Handover) -> None:
        """On the event loop: forget lost lanes, take gained ones, restart their heads."""
        self.lanes.lose(handover.lost)
        self.lanes.gain(handover.gained, handover.restored)
        for key, pointer, record in handover.restarted:
            self._restart(host, key, pointer, record, self._job_at(pointer, record))

    def before_attempt(self, host: Host, job: DispatchJob, place: Place) -> Decision:
        """None when the job is sent now; else it was held, parked, superseded or skipped."""
        if self._held(host, job, place.tp.partition):
            return Taken()
        rules = self._lane_rules(job)
        if rules is None:
            return None
        if not self._lane_lets_go(host, place.tp, place.record, job, place.tracked, rules):
            return Taken()
        if rules.guard is not None and self._regressed(host, job, rules.guard, place.tp):
            return Taken()
        return None

    def after_attempt(self, host: Host, job: DispatchJob, attempt: Attempt, endpoint: str) -> None:
        """Note an attempt's answer: after a 410 Gone, the rule's next jobs are held."""
        if attempt.http_status == 410 and not job.manual and job.rule.rule_id:
            self.gone[job.target.rule_id] = job.target.version

    def on_settled(self, host: Host, job: DispatchJob, outcome: Attempt, partition: int) -> None:
        """An outcome (final flag set): the lane moves on, maybe to its next dispatch."""
        key = (job.target.rule_id, job.event.order_id)
        following = None
        if job.target.deleted and not job.manual:
            # The rule is gone: its lane ends, each parked job with a rule_deleted row.
            following = self.lanes.ended(key, job.dispatch_id, job.seq, delivered=False)
        elif (rules := self._lane_rules(job)) is not None and outcome.status != "held":
            following = self.lanes.settled(job, rules, outcome, partition)
        if following is not None:
            self._release(host, key, following)

    def on_defer(
        self, host: Host, job: DispatchJob, endpoint: str, wait_s: float, why: DeferReason
    ) -> None:
        """The job was parked in a retry topic without an attempt: that copy carries it."""
        rules = self._lane_rules(job)
        if rules is not None:
            self.lanes.deferred(job, rules)

    def on_dropped(self, host: Host, job: DispatchJob) -> None:
        """A dispatch ended without an outcome (dead-lettered): its lane moves on."""
        if self._lane_rules(job) is None:
            return
        key = (job.target.rule_id, job.event.order_id)
        following = self.lanes.ended(key, job.dispatch_id, job.seq, delivered=False)
        if following is not None:
            self._release(host, key, following)

    def snapshot(self) -> list[LaneWrite]:
        """The lane records to write with this commit."""
        return self.lanes.snapshot()

    def _held(self, host: Host, job: DispatchJob, partition: int) -> bool:
        """Keep a paused rule's dispatch (a held row) instead of sending it; True if kept.

        A rule whose endpoint answered 410 Gone is held at once, before analytics has paused
        it, until the rule changes (a person unpausing it, or fixing its URL).
        """
        target = job.target
        if job.manual or job.rule.rule_id == NOTIFICATIONS_RULE_ID:
            return False
        gone = self.gone.get(target.rule_id) == target.version
        if not target.paused and not gone:
            return False
        why = "its endpoint answered 410 Gone" if gone else "the rule is paused"
        text = f"held: {why}; sent when the rule is unpaused"
        outcome = self.deliverer.without_attempt(job, classify.HELD, text, status="held")
        # Held again after a release, it is a new row: its id names this job. Rows are
        # released in time order, and the table keeps milliseconds: one apart at least.
        salt = f"held/{job.created_at.isoformat()}"
        at = max(outcome.dispatched_at, self.last_held_at + timedelta(milliseconds=1))
        self.last_held_at = at
        held_id = attempt_id_for(job.dispatch_id, job.attempt, salt)
        host.record(job, outcome.replace(attempt_id=held_id, dispatched_at=at), partition)
        metrics.HELD.inc()
        return True

    def _lane_rules(self, job: DispatchJob) -> Lanes | None:
        """What the job's rule asks of its lane (a guarded rule: with its account's lifecycle)."""
        guarded = job.target.status_guard == "forward_only" and not job.manual
        lifecycle = self.rules.lifecycle(job.event.account_id) if guarded else None
        return lane_rules(job, lifecycle)

    def _regressed(self, host: Host, job: DispatchJob, lifecycle: Lifecycle, tp: Any) -> bool:
        """End the job `regressed` when the customer holds a later status; True if ended."""
        found = check(lifecycle, job.event.order_status, self.lanes.customer_status(job))
        rule = str(job.target.rule_id)
        if found.unranked:
            metrics.bound(metrics.STATUS_UNRANKED, rule).inc()
        if not found.regressed:
            return False
        text = (
            f"order {job.event.order_id} status {job.event.order_status!r} is older than "
            f"{found.after!r}, already delivered for rule {job.target.rule_id}; not sent"
        )
        reason = f"after {found.after}"
        outcome = self.deliverer.without_attempt(job, reason, text, status="regressed")
        host.record(job, outcome, tp.partition)
        metrics.bound(metrics.STATUS_REGRESSIONS, rule).inc()
        return True

    def _lane_lets_go(
        self, host: Host, tp: Any, record: Any, job: DispatchJob, tracked: bool, rules: Lanes
    ) -> bool:
        """Ask the job's order lane (order-aware rules only) whether it is sent now."""
        pointer = None
        if tracked:
            seq = -1 if job.seq is None else job.seq
            pointer = Pointer(
                seq, tp.topic, tp.partition, record.offset, job.dispatch_id, job.attempt
            )
        verdict = self.lanes.admit(job, rules, tp.partition, pointer)
        if verdict is Verdict.SUPERSEDE:
            text = (
                f"a newer event of order {job.event.order_id} was delivered for rule "
                f"{job.target.rule_id}; this older one is not sent"
            )
            outcome = self.deliverer.without_attempt(
                job, classify.SUPERSEDED, text, status="superseded"
            )
            host.record(job, outcome, tp.partition)
        elif verdict is not Verdict.DELIVER:
            log.info(
                "%s attempt %d of order %s: %s",
                job.dispatch_id, job.attempt, job.event.order_id, verdict.value,
                extra={"dispatch_id": job.dispatch_id, "rule_id": job.target.rule_id},
            )  # fmt: skip
        return verdict is Verdict.DELIVER

    def _job_at(self, pointer: Pointer, record: Any) -> DispatchJob | None:
        """The parked job a lane's head points at, resolved; None when its record is gone."""
        try:
            job = parse_job(record.value if record is not None else None)
        except InvalidMessage:
            return None
        if job.seq is None:
            job = job.model_copy(update={"seq": pointer.seq})
        return self.rules.resolve(job)

    def _restart(
        self, host: Host, key: LaneKey, pointer: Pointer, record: Any, job: DispatchJob | None
    ) -> None:
        """Start a lane's head again from its record; a record gone lets the next one go."""
        if job is not None:
            host.start(TopicPartition(pointer.topic, pointer.partition), record, job, False)
            return
        log.error(
            "the parked job of %s for rule %s is gone; the order's next one goes ahead",
            pointer.dispatch_id, key[0], extra={"order_id": key[1], "rule_id": key[0]},
        )  # fmt: skip
        metrics.LANE_JOBS.labels("lost").inc()
        following = self.lanes.ended(key, pointer.dispatch_id, None, delivered=False)
        if following is not None:
            self._release(host, key, following)

    def _release(self, host: Host, key: LaneKey, pointer: Pointer) -> None:
        """Start the next dispatch of an order lane: its job is read back from its record."""
        metrics.LANE_JOBS.labels("released").inc()
        task = asyncio.create_task(self._start_released(host, key, pointer))
        self.releases.add(task)
        task.add_done_callback(self.releases.discard)

    async def _start_released(self, host: Host, key: LaneKey, pointer: Pointer) -> None:
        record = await self.store.fetch(pointer)
        job = await asyncio.to_thread(self._job_at, pointer, record)  # may catch up on rules
        self._restart(host, key, pointer, record, job)
