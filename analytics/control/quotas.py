"""Per-account limits the API enforces: rules per account, resends per minute."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from analytics.control.rate_limit import first_refusal
from analytics.control.services import Services
from analytics.errors import Conflict, RateLimited, TooBroad


def check_rule_count(svc: Services, account_id: str) -> None:
    """Refuse a new rule when the account already has as many as its limit allows."""
    limit = svc.accounts.of(account_id).limits.max_rules
    if limit is None:
        return
    have = sum(1 for rule in svc.rules.all() if rule.account_id == account_id)
    if have >= limit:
        raise Conflict(
            f"account {account_id!r} has {have} rules, its limit is {limit}; delete one or ask "
            "a platform admin to raise limits.max_rules"
        )


def take_resends(svc: Services, accounts: Iterable[str]) -> None:
    """Count resends (one per account named) against each account's per-minute limit."""
    wanted = {
        account_id: (n, svc.accounts.of(account_id).limits.resends_per_minute)
        for account_id, n in Counter(accounts).items()
    }
    refusal = first_refusal(svc.limiter, wanted, "resends", "minute")
    if refusal is None:
        return
    if refusal.retry_after_s is None:
        raise TooBroad(refusal.message + "; narrow the resend")
    raise RateLimited(refusal.message, refusal.retry_after_s)
