"""Which active rules an undelivered-orders request or a resend-latest covers."""

from __future__ import annotations

from analytics.errors import NotFound, TooBroad
from analytics.history.event_queries import RuleScope
from disparo.rules_view import RulesView

MAX_RULES = 500  # rules in one coverage query (literal arrays in its SQL)


def rule_scopes(rules: RulesView, account_id: str | None, rule_id: int | None) -> list[RuleScope]:
    """The active rules a request covers: one, or all of an account (already scoped to the
    key by `account_scope`), or of all accounts."""
    found = [
        r
        for r in rules.all()
        if r.active
        and (account_id is None or r.account_id == account_id)
        and (rule_id is None or r.id == rule_id)
    ]
    if rule_id is not None and not found:
        raise NotFound(f"no active rule {rule_id}")
    if len(found) > MAX_RULES:
        raise TooBroad(
            f"{len(found)} rules in scope, at most {MAX_RULES} at once; add account_id or rule_id"
        )
    return [RuleScope(r.id, r, r.activated_at) for r in sorted(found, key=lambda r: r.id)]
