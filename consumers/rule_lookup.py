"""The worker's view of rules: a job names its rule; the rule as it is now is sent to."""

from __future__ import annotations

from disparo.rules_view import RulesView
from disparo.schemas import DeliveryTarget, DispatchJob, Rule, RuleRef, now_utc

SYNC_TIMEOUT_S = 5.0
MAX_CONFIRMED = 10_000


class RuleLookup:
    """Resolves jobs against the rules topic; catches up before calling a rule deleted."""

    def __init__(self, view: RulesView, sync_timeout_s: float = SYNC_TIMEOUT_S) -> None:
        self.view = view
        self.sync_timeout_s = sync_timeout_s
        self._missing: dict[int, int] = {}  # rule id -> view generation it was confirmed gone at

    def resolve(self, job: DispatchJob) -> DispatchJob:
        """The job with its target: the rule's current URL, headers and secrets, or `gone`."""
        rule = self._current(job.rule)
        if rule is None:
            return job.with_target(DeliveryTarget.gone(job.rule.rule_id))
        return job.with_target(DeliveryTarget.of(rule, now_utc()))

    def _current(self, ref: RuleRef) -> Rule | None:
        rule = self.view.get(ref.rule_id)
        if rule is not None and rule.version >= ref.version:
            return rule
        if rule is None and self._missing.get(ref.rule_id) == self.view.generation:
            return None  # confirmed gone, and nothing changed since
        # The job is newer than this view (a rule just created or changed): catch up first.
        self.view.sync(self.sync_timeout_s)
        rule = self.view.get(ref.rule_id)
        if rule is None:
            if len(self._missing) >= MAX_CONFIRMED:
                self._missing.clear()
            self._missing[ref.rule_id] = self.view.generation
        return rule
