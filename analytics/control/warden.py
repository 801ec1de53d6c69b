"""Pauses rules whose endpoint has failed without a break for too long."""

from __future__ import annotations

from datetime import datetime, timedelta

from prometheus_client import Counter

from analytics.control.pausing import Pauser
from analytics.control.periodic import Periodic
from analytics.history import queries, schema
from analytics.history.store import Store
from disparo.rules_view import RulesView

DEACTIVATED = Counter(
    "disparo_rules_deactivated_total",
    "Rules paused because their endpoint kept failing (their dispatches are held).",
)


class RuleWarden(Periodic):
    """Every `interval_s`, pauses active rules failing continuously for `after`."""

    what = "rule check"

    def __init__(
        self,
        store: Store,
        rules: RulesView,
        pauser: Pauser,
        after: timedelta | None,
        interval_s: float,
    ) -> None:
        super().__init__(interval_s)
        self.store = store
        self.rules = rules
        self.pauser = pauser
        self.after = after

    def check(self, now: datetime) -> list[int]:
        """Pause what is due now; return the ids paused."""
        if self.after is None:
            return []
        since = now - timedelta(days=schema.RETENTION_DAYS)
        sql, params = queries.failing_rules(self.store.database, since, now - self.after)
        done = []
        for row in self.store.select(sql, params):
            rule = self.rules.get(int(row["rule"]))
            if rule is None or not rule.active or rule.paused:
                continue
            started = max((t for t in (rule.activated_at, rule.resumed_at) if t), default=None)
            if started is not None and started > now - self.after:
                continue  # (re)activated or unpaused recently: give the endpoint its window
            reason = (
                f"paused automatically at {now.isoformat(timespec='seconds')}: every "
                f"attempt since {_text(row['streak_start'])} failed ({row['failures']} "
                f"attempts, none successful for over {self.after}); its webhooks are held: "
                "fix the endpoint and unpause the rule to send them"
            )
            self.pauser.pause(rule, reason)
            DEACTIVATED.inc()
            done.append(rule.id)
        return done


def _text(value: object) -> str:
    return value.isoformat(timespec="seconds") if isinstance(value, datetime) else str(value)
