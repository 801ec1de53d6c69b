"""The worker's view of rules: a job names its rule; the rule as it is now is sent to."""

from __future__ import annotations

from disparo.accounts_view import AccountsView
from disparo.lifecycle import Lifecycle
from disparo.notifications import notification_target
from disparo.rule_codec import unusable
from disparo.rules_view import RulesView
from disparo.schemas import (
    NOTIFICATIONS_RULE_ID,
    DeliveryTarget,
    DispatchJob,
    Rule,
    RuleRef,
    now_utc,
)

SYNC_TIMEOUT_S = 5.0
MAX_CONFIRMED = 10_000


class RuleLookup:
    """Resolves jobs against the rules topic; catches up before calling a rule deleted.

    Jobs for rule 0 are an account's notifications: they go to the account's notification
    URL, signed with its notification secret.
    """

    def __init__(
        self,
        view: RulesView,
        accounts: AccountsView | None = None,
        sync_timeout_s: float = SYNC_TIMEOUT_S,
    ) -> None:
        self.view = view
        self.accounts = accounts
        self.sync_timeout_s = sync_timeout_s
        self._missing: dict[int, int] = {}  # rule id -> view generation it was confirmed gone at
        # (rule id, in a rotation's overlap) -> the rule record it was built from, its target:
        # jobs repeat rules, and the view hands out one object per record.
        self._targets: dict[tuple[int, bool], tuple[Rule, DeliveryTarget]] = {}

    def resolve(self, job: DispatchJob, seq: int | None = None) -> DispatchJob:
        """The job with its target: the rule's current URL, headers and secrets, or `gone`.

        `seq`, when given, is the job's place in its order (set in the same copy).
        """
        if job.rule.rule_id == NOTIFICATIONS_RULE_ID:
            return job.with_target(self._notifications(job.event.account_id), seq)
        rule = self._current(job.rule)
        if rule is None:
            return job.with_target(DeliveryTarget.gone(job.rule.rule_id), seq)
        if unusable(rule):  # its record was written outside the API: send nothing
            return job.with_target(DeliveryTarget.unusable(rule), seq)
        return job.with_target(self._target(rule), seq)

    def _target(self, rule: Rule) -> DeliveryTarget:
        """The rule's delivery target, built once per rule record (and overlap state)."""
        now = now_utc()
        until = rule.previous_secret_until
        key = (rule.id, until is not None and until > now)
        held = self._targets.get(key)
        if held is not None and held[0] is rule:  # the view's object for this very record
            return held[1]
        if len(self._targets) >= MAX_CONFIRMED:
            self._targets.clear()
        if rule.status_guard == "forward_only" and self.accounts is not None:
            # A lifecycle set before the rule was saved is read before its first job.
            self.accounts.sync(self.sync_timeout_s)
        target = DeliveryTarget.of(rule, now)
        self._targets[key] = (rule, target)
        return target

    def lifecycle(self, account_id: str) -> Lifecycle | None:
        """The account's order lifecycle (for rules with a status guard), if it set one."""
        account = self.accounts.get(account_id) if self.accounts is not None else None
        return None if account is None else account.lifecycle

    def _notifications(self, account_id: str) -> DeliveryTarget:
        if self.accounts is None:
            return DeliveryTarget.gone(NOTIFICATIONS_RULE_ID)
        account = self.accounts.get(account_id)
        if account is None or account.notification_url is None:
            self.accounts.sync(self.sync_timeout_s)  # set a moment ago: catch up first
            account = self.accounts.get(account_id)
        return notification_target(account)

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
