"""Per-account limits the API enforces: rules per account, resends per minute."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable

from analytics.control.rate_limit import first_refusal, over_limit
from analytics.control.services import Services
from analytics.control.tasks import Task
from analytics.errors import Conflict, RateLimited, TooBroad
from disparo.schemas import DispatchJob


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


def queue_paced(
    svc: Services, task: Task, jobs: list[DispatchJob], topic: str | None = None
) -> None:
    """Queue a chunk of manual jobs within each account's resends per minute.

    Jobs go out in slices no larger than the account's limit. A slice the limit refuses
    ends the task with 429 when the task has queued nothing yet (nothing is sent, as for
    any refused request); after that the task waits for the limit instead (paced, never
    cut short), saying so in its progress.
    """
    for account_id, own in _by_account(jobs).items():
        limit = svc.accounts.of(account_id).limits.resends_per_minute
        size = limit or len(own)
        for start in range(0, len(own), size):
            piece = own[start : start + size]
            while limit is not None:
                refusal = over_limit(
                    svc.limiter, account_id, "resends", len(piece), limit, "minute"
                )
                if refusal is None:
                    break
                wait = refusal.retry_after_s or 60
                if not task.progress.get("queued"):
                    raise RateLimited(refusal.message, wait)
                task.note = f"waiting {wait} s for account {account_id!r}'s resend limit"
                time.sleep(wait)
            task.note = ""
            svc.jobs.queue(piece, topic)
            task.count(queued=len(piece))


def _by_account(jobs: list[DispatchJob]) -> dict[str, list[DispatchJob]]:
    found: dict[str, list[DispatchJob]] = {}
    for job in jobs:
        found.setdefault(job.event.account_id, []).append(job)
    return found
