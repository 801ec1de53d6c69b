"""Deactivates rules whose endpoint has failed without a break for too long."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from prometheus_client import Counter

from analytics import queries, schema
from analytics.periodic import Periodic
from analytics.store import Store
from disparo.rules_view import RulesView
from disparo.schemas import Rule

log = logging.getLogger(__name__)
DEACTIVATED = Counter(
    "disparo_rules_deactivated_total", "Rules deactivated because their endpoint kept failing."
)


class RuleWarden(Periodic):
    """Every `interval_s`, deactivates active rules failing continuously for `after`."""

    what = "rule check"

    def __init__(
        self,
        store: Store,
        rules: RulesView,
        write: Callable[[Rule], None],
        after: timedelta | None,
        interval_s: float,
    ) -> None:
        super().__init__(interval_s)
        self.store = store
        self.rules = rules
        self.write = write
        self.after = after

    def check(self, now: datetime) -> list[int]:
        """Deactivate what is due now; return the ids deactivated."""
        if self.after is None:
            return []
        since = now - timedelta(days=schema.RETENTION_DAYS)
        sql, params = queries.failing_rules(self.store.database, since, now - self.after)
        done = []
        for row in self.store.select(sql, params):
            rule = self.rules.get(int(row["rule"]))
            if rule is None or not rule.active:
                continue
            if rule.activated_at is not None and rule.activated_at > now - self.after:
                continue  # (re)activated recently: give the endpoint its full window again
            reason = (
                f"deactivated automatically at {now.isoformat(timespec='seconds')}: every "
                f"attempt since {_text(row['streak_start'])} failed ({row['failures']} "
                f"attempts, none successful for over {self.after}); fix the endpoint and "
                "set active=true"
            )
            self.write(rule.changed(active=False, deactivated_reason=reason))
            DEACTIVATED.inc()
            log.warning("rule %d deactivated: %s", rule.id, reason)
            done.append(rule.id)
        return done


def _text(value: object) -> str:
    return value.isoformat(timespec="seconds") if isinstance(value, datetime) else str(value)
