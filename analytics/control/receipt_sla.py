"""The receipt SLA of the dispatches a request covers (design: "Receipt SLA").

`GET /api/v1/sla` and `/api/v1/sla/breaches` call these; the figures come from
`dispatch_state` (analytics/history/sla_queries.py says how a lag is split and judged).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from analytics.history import sla_queries
from analytics.history.sla_queries import LEVELS, STAGES, SlaScope
from analytics.history.store import Row, Store
from disparo.accounts import Slo
from disparo.accounts_view import AccountsView

BREACH_FIELDS = (
    "order_id", "rule_id", "event_type", "occurred_at", "lag_s", "stage", "open",
    "account_id", "dispatch_id",
)  # fmt: skip


def slos_in_scope(accounts: AccountsView, account_id: str | None) -> dict[str, Slo]:
    """The SLO of the account in scope, or of every account that set one (platform keys)."""
    if account_id is not None:
        slo = accounts.of(account_id).slo
        return {} if slo is None else {account_id: slo}
    return {a.id: a.slo for a in accounts.all() if a.slo is not None}


def report(store: Store, scope: SlaScope, now: datetime) -> dict[str, Any]:
    """Percentiles per stage (seconds), compliance and the breaches' count and blame."""
    [row] = store.select(*sla_queries.summary(store.database, scope, now))
    received = int(row["n_received"])
    judged = int(row["judged"])
    return {
        "stages": {name: _levels(row[name], received) for name in (*STAGES, "total")},
        "compliance": round(int(row["in_time"]) / judged, 6) if judged else None,
        "breaches": int(row["breaches"]),
        "blame": {name: int(row[f"blame_{name}"]) for name in STAGES},
        "received": received,
        "open": int(row["n_open"]),
        "slo": _slo_shown(scope),
        "from": scope.period.start.isoformat(),
        "to": scope.period.end.isoformat(),
    }


def breaches(store: Store, scope: SlaScope, now: datetime, limit: int, offset: int) -> list[Row]:
    """The breaching dispatches, the longest lag first."""
    rows = store.select(*sla_queries.breaches(store.database, scope, now, limit, offset))
    return [{name: _shown(name, row[name]) for name in BREACH_FIELDS} for row in rows]


def _levels(values: list[Any], received: int) -> dict[str, float | None]:
    names = [f"p{round(level * 100)}" for level in LEVELS]
    if not received:
        return dict.fromkeys(names)
    return {name: round(float(v) / 1000, 3) for name, v in zip(names, values, strict=True)}


def _shown(name: str, value: Any) -> Any:
    if name == "open":
        return bool(value)
    if name == "rule_id":
        return int(value)
    if name == "lag_s":
        return round(float(value), 3)
    return value


def _slo_shown(scope: SlaScope) -> dict[str, Any] | None:
    if scope.account_id is None:
        return None  # each account its own
    slo = scope.slos.get(scope.account_id)
    return None if slo is None else slo.model_dump()
