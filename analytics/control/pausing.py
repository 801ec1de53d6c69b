"""Rules paused by disparo itself (endpoint gone, failing for days): owner told, change audited."""

from __future__ import annotations

import logging

from analytics.control import audit
from analytics.control.job_queue import JobQueue, owner_notice
from analytics.control.rule_book import RuleBook
from analytics.errors import StaleVersion
from analytics.history.store import Store
from disparo.accounts_view import AccountsView
from disparo.schemas import Rule, now_utc

log = logging.getLogger(__name__)


class Pauser:
    """Pauses rules on disparo's own account: `rule.paused` to the owner, then the write."""

    def __init__(
        self, book: RuleBook, accounts: AccountsView, jobs: JobQueue, store: Store
    ) -> None:
        self.book = book
        self.accounts = accounts
        self.jobs = jobs
        self.store = store

    def pause(self, rule: Rule, reason: str) -> Rule:
        """Write `rule` paused with `reason`; its dispatches are held from now on.

        Compare-and-set like every rule write: if a person changed the rule since it was
        read, the pause applies to the rule as it is now (unless it is paused already).
        """
        try:
            return self._pause(rule, reason)
        except StaleVersion:
            current = self.book.get(rule.id)
            if current is None or current.paused or not current.active:
                return current or rule
            return self._pause(current, reason)

    def _pause(self, rule: Rule, reason: str) -> Rule:
        paused = rule.changed(paused=True, paused_reason=reason)
        # The owner's notice is queued first: if writing the rule then fails, the next turn
        # sends it again under the same webhook-id (the rule's new version) and writes.
        if self.accounts.of(rule.account_id).notification_url is not None:
            details = {"reason": reason}
            notice = owner_notice("rule.paused", paused, str(paused.version), now_utc(), details)
            self.jobs.send_job(notice)
        self.book.write(paused)
        before = {"paused": rule.paused, "paused_reason": rule.paused_reason}
        after = {"paused": True, "paused_reason": reason}
        audit.record(
            self.store,
            audit.SYSTEM_ACTOR,
            "rule.update",
            str(rule.id),
            {"before": before, "after": after},
            rule.account_id,
        )
        log.warning("rule %d paused: %s", rule.id, reason)
        return paused
