"""Tells an account's owner when its receipt SLA is breached, and when it recovers; and
feeds the receipt-lag histograms.

The same hysteresis as a failing rule (analytics/control/rule_health.py): the window is cut
in thirds, with one more third before it, and the account is `breached` when, in each of
those slices, more than 5 % of the dispatches judged in it breached its SLO; it has
recovered once the latest slice is at or under 5 % again. A dispatch is judged when its
first 2xx comes back, or when it has been owed `max_undelivered_seconds`. Each change is
stored in `sla_health` and, when the account has a notification URL, announced by a signed
`sla.breached` / `sla.recovered` webhook delivered like any other.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from prometheus_client import Counter, Histogram

from analytics.control.job_queue import JobQueue
from analytics.control.periodic import Periodic
from analytics.control.rule_health import SLICES, judge
from analytics.history import schema, sla_queries
from analytics.history.sla_queries import STAGES
from analytics.history.store import Store
from disparo.accounts_view import AccountsView
from disparo.notifications import AccountKind, account_notification_job

log = logging.getLogger(__name__)
BREACH_SHARE = 0.05  # a p95 target: at most 5 % may be late
HISTOGRAM_ROWS = 100_000  # dispatches observed per turn, at most
_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900, 3600, 4 * 3600, 86400)
RECEIPT_LAG = Histogram(
    "disparo_receipt_lag_seconds",
    "From the order event to the customer's first 2xx, by stage (producer, platform, "
    "customer, total), observed once per dispatch when its 2xx is stored.",
    ["stage"],
    buckets=_BUCKETS,
)
ACCOUNT_RECEIPT_LAG = Histogram(
    "disparo_account_receipt_lag_seconds",
    "disparo_receipt_lag_seconds of the accounts named in DISPARO_METRICS_ACCOUNTS.",
    ["account", "stage"],
    buckets=_BUCKETS,
)
CHANGES = Counter("disparo_sla_changes_total", "Accounts found breaching or recovered.", ["state"])


def sla_change(state: str | None, breaching: bool | None) -> AccountKind | None:
    """The notification a verdict calls for, given the account's last recorded state."""
    if breaching is True and state != "breached":
        return "sla.breached"
    if breaching is False and state == "breached":
        return "sla.recovered"
    return None


class SlaWatch(Periodic):
    """Every `interval_s`: observes the dispatches received since the last turn, and judges
    each account with an SLO over the last `window`."""

    what = "receipt SLA check"

    def __init__(
        self,
        store: Store,
        accounts: AccountsView,
        jobs: JobQueue,
        window: timedelta,
        interval_s: float,
        metered: frozenset[str] = frozenset(),
    ) -> None:
        super().__init__(interval_s)
        self.store = store
        self.accounts = accounts
        self.jobs = jobs
        self.window = window
        self.metered = metered
        self.observed_until: datetime | None = None

    def check(self, now: datetime) -> list[tuple[str, AccountKind]]:
        """Observe, then record (and announce) every change of state due now."""
        self._observe(now)
        slos = {a.id: a.slo for a in self.accounts.all() if a.slo is not None}
        if not slos:
            return []
        step = self.window / SLICES
        edges = [now - self.window - step + step * i for i in range(SLICES + 2)]
        db = self.store.database
        rows = self.store.select(*sla_queries.slices(db, slos, edges, now))
        states = {str(r["account"]): r for r in self.store.select(sla_queries.states(db))}
        done: list[tuple[str, AccountKind]] = []
        for row in rows:
            account_id = str(row["account"])
            slices = [(int(row[f"n{i}"]), int(row[f"b{i}"])) for i in range(len(edges) - 1)]
            verdict = judge(slices, BREACH_SHARE)
            known = states.get(account_id)
            kind = sla_change(str(known["state"]) if known else None, _breaching(verdict))
            if kind is not None:
                self._announce(account_id, kind, slices, known, now)
                done.append((account_id, kind))
        return done

    def _announce(
        self,
        account_id: str,
        kind: AccountKind,
        slices: list[tuple[int, int]],
        known: dict[str, object] | None,
        now: datetime,
    ) -> None:
        n, b = slices[-1]
        slo = self.accounts.of(account_id).slo
        details = {
            "breach_ratio": round(b / n, 4) if n else 0.0,
            "p95_seconds": slo.p95_seconds if slo else None,
            "max_undelivered_seconds": slo.max_undelivered_seconds if slo else None,
            "window_s": self.window.total_seconds(),
            "judged": sum(s[0] for s in slices),
            "breaches": sum(s[1] for s in slices),
        }
        if self.accounts.of(account_id).notification_url is not None:
            episode = str(int(str(known["changes"])) if known else 0)
            self.jobs.send_job(account_notification_job(kind, account_id, episode, now, details))
        # Recorded after the webhook was queued: a crash in between announces it again,
        # with the same webhook-id (the episode), never not at all.
        state = kind.removeprefix("sla.")
        row = {"at": now, "account_id": account_id, "state": state}
        row["breach_ratio"] = details["breach_ratio"]
        self.store.insert(schema.SLA_HEALTH_TABLE, [row], f"{account_id}/{kind}/{now}")
        CHANGES.labels(state).inc()
        log.warning("account %s receipt SLA %s: %s", account_id, state, details)

    def _observe(self, now: datetime) -> None:
        """Put each dispatch whose first 2xx was stored since the last turn in the histograms
        (the first turn of an owner starts from now: a new owner does not count twice)."""
        # A 2xx is stored a moment after it came back: the latest seconds wait a turn.
        until = now - timedelta(seconds=10)
        since, self.observed_until = self.observed_until, until
        if since is None or until <= since:
            return
        sql, params = sla_queries.received_between(
            self.store.database, since, until, HISTOGRAM_ROWS
        )
        for row in self.store.select(sql, params):
            account = str(row["account_id"])
            for stage in (*STAGES, "total"):
                seconds = int(row[f"{stage}_ms"]) / 1000
                RECEIPT_LAG.labels(stage).observe(seconds)
                if account in self.metered:
                    ACCOUNT_RECEIPT_LAG.labels(account, stage).observe(seconds)


def _breaching(verdict: str | None) -> bool | None:
    return None if verdict is None else verdict == "failing"
