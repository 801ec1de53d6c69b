"""Tells an account's owner when one of its rules keeps failing, and when it recovers.

The window is cut in thirds, and one more third before it: a rule is failing when, in each
of those slices, it had automatic attempts and their failure ratio was above the account's
threshold. The earliest slice ends where the window starts, so the ratio was above for at
least the whole window (reported between 1 and 4/3 windows after the failures began). It
has recovered once the latest slice's ratio is back at or below the threshold. Each change
is stored in `rule_health` and, when the account has a notification URL, announced by a
signed `rule.failing` / `rule.recovered` webhook delivered like any other.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Literal

from prometheus_client import Counter

from analytics.control.job_queue import JobQueue, owner_notice
from analytics.control.periodic import Periodic
from analytics.history import queries, schema
from analytics.history.store import Store
from disparo.accounts_view import AccountsView
from disparo.notifications import Kind
from disparo.rules_view import RulesView

log = logging.getLogger(__name__)
SLICES = 3
Verdict = Literal["failing", "ok"]
CHANGES = Counter(
    "disparo_rule_health_changes_total", "Rules found failing or recovered.", ["state"]
)


def judge(slices: Sequence[tuple[int, int]], threshold: float) -> Verdict | None:
    """`failing` when every (attempts, failures) slice is above the threshold, `ok` when the
    latest slice is at or below it, None when there is too little traffic to tell."""
    if all(n > 0 and f / n > threshold for n, f in slices):
        return "failing"
    n, f = slices[-1]
    if n > 0 and f / n <= threshold:
        return "ok"
    return None


def change(state: str | None, verdict: Verdict | None) -> Kind | None:
    """The notification a verdict calls for, given the rule's last recorded state."""
    if verdict == "failing" and state != "failing":
        return "rule.failing"
    if verdict == "ok" and state == "failing":
        return "rule.recovered"
    return None


class RuleHealth(Periodic):
    """Every `interval_s`, judges each rule over the last `window` and records changes."""

    what = "rule health check"

    def __init__(
        self,
        store: Store,
        rules: RulesView,
        accounts: AccountsView,
        jobs: JobQueue,
        window: timedelta,
        interval_s: float,
    ) -> None:
        super().__init__(interval_s)
        self.store = store
        self.rules = rules
        self.accounts = accounts
        self.jobs = jobs
        self.window = window

    def check(self, now: datetime) -> list[tuple[int, Kind]]:
        """Record (and announce) every change of state due now; return them."""
        db = self.store.database
        step = self.window / SLICES
        edges = [now - self.window - step + step * i for i in range(SLICES + 2)]
        rows = self.store.select(*queries.rule_slices(db, edges))
        states = {int(r["rule"]): r for r in self.store.select(queries.rule_states(db))}
        done: list[tuple[int, Kind]] = []
        for row in rows:
            rule = self.rules.get(int(row["rule"]))
            if rule is None:
                continue
            slices = [(int(row[f"n{i}"]), int(row[f"f{i}"])) for i in range(len(edges) - 1)]
            account = self.accounts.of(rule.account_id)
            known = states.get(rule.id)
            state = str(known["state"]) if known else None
            kind = change(state, judge(slices, account.failing_threshold))
            if kind is None:
                continue
            n, f = slices[-1]
            details = {
                "failure_ratio": round(f / n, 4),
                "threshold": account.failing_threshold,
                "window_s": self.window.total_seconds(),
                "attempts": sum(s[0] for s in slices),
                "failures": sum(s[1] for s in slices),
            }
            if account.notification_url is not None:
                episode = str(int(known["changes"]) if known else 0)
                self.jobs.send_job(owner_notice(kind, rule, episode, now, details))
            # Recorded after the webhook was queued: a crash in between announces it again,
            # with the same webhook-id (the episode), never not at all.
            row_out = {
                "at": now,
                "rule_id": rule.id,
                "account_id": rule.account_id,
                "state": kind.removeprefix("rule."),
                "failure_ratio": details["failure_ratio"],
            }
            self.store.insert(schema.HEALTH_TABLE, [row_out], f"{rule.id}/{kind}/{now}")
            CHANGES.labels(row_out["state"]).inc()
            log.warning("rule %d %s: %s", rule.id, kind.removeprefix("rule."), details)
            done.append((rule.id, kind))
        return done
