"""Rules paused by disparo itself (endpoint gone, failing for days): owner told, change audited."""

from __future__ import annotations

import logging
from collections.abc import Callable

from analytics import audit
from analytics.api.deps import Services
from analytics.rules_topic import write_rule
from disparo.notifications import notification_job
from disparo.rule_codec import encode_rule
from disparo.schemas import DispatchJob, Rule, now_utc

log = logging.getLogger(__name__)


class Pauser:
    """Pauses rules on disparo's own account: `rule.paused` to the owner, then the write."""

    def __init__(self, svc: Services, send_job: Callable[[DispatchJob], None]) -> None:
        self.svc = svc
        self.send_job = send_job

    def pause(self, rule: Rule, reason: str) -> Rule:
        """Write `rule` paused with `reason`; its dispatches are held from now on."""
        paused = rule.changed(paused=True, paused_reason=reason)
        # The owner's notice is queued first: if writing the rule then fails, the next turn
        # sends it again under the same webhook-id (the rule's new version) and writes.
        svc = self.svc
        if svc.accounts.of(rule.account_id).notification_url is not None:
            details = {"reason": reason}
            job = notification_job("rule.paused", paused, str(paused.version), now_utc(), details)
            self.send_job(job)
        write_rule(svc.producer, svc.topics.rules, svc.rules, rule.id, encode_rule(paused, svc.box))
        before = {"paused": rule.paused, "paused_reason": rule.paused_reason}
        after = {"paused": True, "paused_reason": reason}
        audit.record(
            svc.store,
            audit.SYSTEM_ACTOR,
            "rule.update",
            str(rule.id),
            {"before": before, "after": after},
            rule.account_id,
        )
        log.warning("rule %d paused: %s", rule.id, reason)
        return paused
