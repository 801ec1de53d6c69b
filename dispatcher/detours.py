"""Where a job goes: `dispatch-jobs`, or a retry tier when its endpoint is parked.

Only plain rules' jobs take the detour. An order-aware rule's first attempt takes its place
in its order from its offset in `dispatch-jobs`, and a paused rule's jobs are held by the
worker at once, so those always go the ordinary way.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from disparo.parking import endpoint_key, park_job
from disparo.retry_tiers import Tier
from disparo.schemas import DispatchJob, Rule
from disparo.topics import Topics


def parkable_endpoints(rules: Sequence[Rule]) -> dict[int, str]:
    """The endpoint of every rule whose jobs may be parked by the dispatcher, by rule id."""
    return {
        r.id: endpoint_key(r.account_id, str(r.url))
        for r in rules
        if r.ordering == "none" and not r.supersede and not r.paused
    }


class Detours:
    """Chooses each job's topic from the parked endpoints of the moment."""

    def __init__(self, topics: Topics, tiers: Sequence[Tier]) -> None:
        self.topics = topics
        self.tiers = tuple(tiers)
        self._rules: Sequence[Rule] = ()
        self._endpoints: dict[int, str] = {}

    def destination(
        self,
        job: DispatchJob,
        rules: Sequence[Rule],
        parked: dict[str, datetime],
        now: datetime,
    ) -> tuple[str, DispatchJob]:
        """The topic `job` is sent to, and the job as sent there."""
        if not parked:
            return self.topics.dispatch_jobs, job
        if rules is not self._rules:  # the rules view hands out one tuple until a change
            self._rules, self._endpoints = rules, parkable_endpoints(rules)
        endpoint = self._endpoints.get(job.rule.rule_id)
        until = parked.get(endpoint) if endpoint is not None else None
        if until is None:
            return self.topics.dispatch_jobs, job
        tier, parked_job = park_job(job, self.tiers, (until - now).total_seconds(), now)
        return self.topics.retry(tier.name), parked_job
