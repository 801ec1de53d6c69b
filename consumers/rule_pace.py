"""A rule's `max_per_second`, held across every worker: the pace hook.

Each worker sends a rule's webhooks at its *share* of the rate: the fraction of the
`dispatch-jobs` partitions the group coordinator gave it. Retry, resend and lane jobs of an
order use the same partition number (the workers' range assignor keeps the topics
co-partitioned), so a worker's jobs are its partitions' jobs, and the shares of one
generation add up to exactly 1 whatever the number of workers: a worker that joins or
leaves changes every share at the next assignment. The cost: a rule whose orders hash
unevenly over the partitions gets somewhat less than its rate, never more.

Within its share a worker gives the rule's jobs evenly spaced turns (no burst allowance). A
job whose turn comes within `WAIT_S` waits for it in memory, holding no slot; a later one is
parked in a retry tier until about its turn (no attempt used, status unchanged), so one
rule's backlog never holds the worker's slots or other rules' jobs. Jobs that waited for
their turns can still bunch up on the way to the POST (behind other rules' jobs for the
endpoint's slots, or a stalled event loop), so the worker asks once more with its slots in
hand (`sending`): a POST goes no sooner than one gap after this worker's previous one for
the rule (a hundredth of a gap early at most), so a stall never turns into a burst. Across
workers any second then holds at most the rate plus about one per worker.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from consumers import classify, metrics
from consumers.hooks import Decision, Defer, Host, JobHook, Place, Wait
from disparo.schemas import DispatchJob

# The longest a job waits for its turn in memory; beyond, it is parked.
WAIT_S = 2.0
# How early (in gaps) a POST may go: a timer that fires a hair early does not wait again.
EARLY_GAPS = 0.01


class RulePace(JobHook):
    """Spaces each paced rule's attempts at this worker's share of its rate."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, wait_s: float = WAIT_S) -> None:
        self.clock = clock
        self.wait_s = wait_s
        self.share = 1.0
        self._next: dict[int, float] = {}  # rule id -> when its next turn is free
        self._parked: dict[int, float] = {}  # rule id -> the turn the last parked job was given
        self._due: dict[int, float] = {}  # rule id -> when its next POST is due here

    def follow(self, owned: int, total: int) -> None:
        """This worker owns `owned` of the `total` dispatch-jobs partitions."""
        metrics.JOB_PARTITIONS.set(owned)
        if total > 0 and owned > 0:
            self.share = owned / total

    def before_attempt(self, host: Host, job: DispatchJob, place: Place) -> Decision:
        rate = _rate(job)
        if rate is None:
            return None
        rule, per_s = job.target.rule_id, rate * self.share
        now = self.clock()
        turn = max(now, self._next.get(rule, now))
        if turn - now <= self.wait_s:
            self._next[rule] = turn + 1.0 / per_s
            if turn <= now:
                return None
            metrics.RATE_WAITS.inc()
            return Wait(turn - now)
        # Parked jobs come back spread at the rate, after those already given a turn.
        back = max(turn, self._parked.get(rule, turn)) + 1.0 / per_s
        self._parked[rule] = back
        return Defer(back - now, classify.RATE_LIMITED)

    def sending(self, job: DispatchJob) -> float:
        """0 when the job's POST may go now (it is counted); otherwise the seconds until it
        is one gap after this worker's previous POST for the rule."""
        rate = _rate(job)
        if rate is None:
            return 0.0
        gap, rule, now = 1.0 / (rate * self.share), job.target.rule_id, self.clock()
        due = self._due.get(rule, now)
        if now < due - EARLY_GAPS * gap:
            return due - now
        self._due[rule] = max(now, due) + gap
        return 0.0


def _rate(job: DispatchJob) -> float | None:
    """The rate a job is paced at: its rule's, but for a test webhook (one, sent by a person
    who waits for its answer: it never waits for a turn)."""
    return None if job.test else job.target.max_per_second
