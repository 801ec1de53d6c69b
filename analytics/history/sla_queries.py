"""Receipt SLA queries over `dispatch_state` (design: "Receipt SLA"): pure SQL builders.

Each dispatch's lag from its order event to the customer's first 2xx splits in three
stages: `producer` (occurred_at -> published), `platform` (published -> the first POST
began) and `customer` (first POST -> the first 2xx came back: slow answers, failures and
the retries they cost). A negative stage (clocks apart) counts as 0, so `total` is the sum.
A dispatch breaches its account's SLO when it arrived later than `p95_seconds` after the
event, or is still owed (no 2xx, not superseded or regressed) more than
`max_undelivered_seconds` after it; the stage to blame is the longest one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from analytics.history import schema
from analytics.history.event_queries import sql_text
from analytics.history.queries import TS_TYPE, Period, ts_param
from disparo.accounts import Slo

STAGES = ("producer", "platform", "customer")
LEVELS = (0.5, 0.95, 0.99)


@dataclass(frozen=True)
class SlaScope:
    """Which dispatches an SLA request covers, and each account's target."""

    period: Period
    slos: Mapping[str, Slo]  # the accounts in scope that set one
    account_id: str | None = None
    rule_id: int | None = None
    event_type: str | None = None


def _ms(later: str, earlier: str) -> str:
    return f"greatest(0, toUnixTimestamp64Milli({later}) - toUnixTimestamp64Milli({earlier}))"


# Per dispatch, in milliseconds; `age` is how long an open dispatch has been owed.
_DISPATCHES = (
    "SELECT account_id, rule_id, order_id, dispatch_id, event_type, occurred_at, published_at, "
    "first_attempt_at, first_ok_at, first_ok_at IS NOT NULL AS received, "
    "NOT received AND settled = 0 AS open, "
    f"{_ms('published_at', 'occurred_at')} AS producer_ms, "
    f"if(first_attempt_at IS NULL, 0, {_ms('assumeNotNull(first_attempt_at)', 'published_at')}) "
    "AS platform_ms, "
    f"if(received, {_ms('assumeNotNull(first_ok_at)', 'assumeNotNull(first_attempt_at)')}, 0) "
    "AS customer_ms, producer_ms + platform_ms + customer_ms AS total_ms, "
    f"{_ms('{now:' + TS_TYPE + '}', 'occurred_at')} AS age_ms, "
    "{p95}[account_id] * 1000 AS p95_ms, {open_max}[account_id] * 1000 AS open_max_ms, "
    "mapContains({p95}, account_id) AS has_slo, "
    "has_slo AND ((received AND total_ms > p95_ms) OR (open AND age_ms > open_max_ms)) "
    "AS breached, "
    "if(open, if(first_attempt_at IS NULL, 'platform', 'customer'), "
    "multiIf(producer_ms >= platform_ms AND producer_ms >= customer_ms, 'producer', "
    "platform_ms >= customer_ms, 'platform', 'customer')) AS stage, "
    "if(open, age_ms, total_ms) AS lag_ms, "
    # When the dispatch was judged: its 2xx, or the moment it had been owed too long.
    "if(received AND total_ms <= open_max_ms, assumeNotNull(first_ok_at), "
    "occurred_at + toIntervalMillisecond(toInt64(open_max_ms))) AS judged_at "
)


def _dispatches(
    database: str, scope: SlaScope, now: datetime, keys_where: str | None = None
) -> tuple[str, dict[str, Any]]:
    """The scope's dispatches with their stages (FINAL: a dispatch's rows merged first).

    The dispatches are found first among the unmerged rows (an event's row holds its publish
    time, an attempt's its POST times: `keys_where` picks by those), then only theirs are
    merged: a window of the whole table reads a column instead of merging 30 days.
    """
    params: dict[str, Any] = {
        "start": ts_param(scope.period.start),
        "end": ts_param(scope.period.end),
        "now": ts_param(now),
    }
    where = [
        f"published_at >= {{start:{TS_TYPE}}}",
        f"published_at < {{end:{TS_TYPE}}}",
    ]
    if scope.account_id is not None:
        where.append("account_id = {account:String}")
        params["account"] = scope.account_id
    if scope.rule_id is not None:
        where.append("rule_id = {rule:UInt64}")
        params["rule"] = scope.rule_id
    if scope.event_type is not None:
        where.append("event_type = {event_type:String}")
        params["event_type"] = scope.event_type
    p95 = _seconds({a: s.p95_seconds for a, s in scope.slos.items()})
    open_max = _seconds({a: s.max_undelivered_seconds for a, s in scope.slos.items()})
    select = _DISPATCHES.replace("{p95}", p95).replace("{open_max}", open_max)
    table = f"{database}.{schema.DISPATCH_STATE_TABLE}"
    found = " AND ".join(where if keys_where is None else [*where[2:], keys_where])
    keys = "account_id, rule_id, order_id, dispatch_id"
    sql = (
        f"{select}FROM {table} FINAL WHERE ({keys}) IN (SELECT {keys} FROM {table} "
        f"WHERE {found}) AND {' AND '.join(where)}"
    )
    return sql, params


def _seconds(by_account: Mapping[str, float]) -> str:
    """A literal Map(String, Float64) of seconds by account (an empty one typed too)."""
    pairs = ", ".join(f"{sql_text(a)}, {float(s)!r}" for a, s in sorted(by_account.items()))
    return f"CAST(map({pairs}), 'Map(String, Float64)')"


def summary(database: str, scope: SlaScope, now: datetime) -> tuple[str, dict[str, Any]]:
    """Percentiles per stage of the received dispatches, compliance and breach counts."""
    inner, params = _dispatches(database, scope, now)
    levels = ", ".join(map(str, LEVELS))
    stages = ", ".join(
        f"quantilesExactIf({levels})({name}_ms, received) AS {name}" for name in (*STAGES, "total")
    )
    sql = (
        f"SELECT {stages}, countIf(received) AS n_received, countIf(open) AS n_open, "
        "countIf(has_slo AND received AND total_ms <= p95_ms) AS in_time, "
        "countIf(has_slo AND (received OR (open AND age_ms > open_max_ms))) AS judged, "
        "countIf(breached) AS breaches, "
        "countIf(breached AND stage = 'producer') AS blame_producer, "
        "countIf(breached AND stage = 'platform') AS blame_platform, "
        "countIf(breached AND stage = 'customer') AS blame_customer "
        f"FROM ({inner})"
    )
    return sql, params


def breaches(
    database: str, scope: SlaScope, now: datetime, limit: int, offset: int = 0
) -> tuple[str, dict[str, Any]]:
    """The breaching dispatches, the longest lag first."""
    inner, params = _dispatches(database, scope, now)
    sql = (
        "SELECT order_id, rule_id, account_id, event_type, occurred_at, dispatch_id, "
        "lag_ms / 1000 AS lag_s, stage, open "
        f"FROM ({inner}) WHERE breached "
        f"ORDER BY lag_ms DESC, order_id, rule_id LIMIT {int(limit)} OFFSET {int(offset)}"
    )
    return sql, params


def slices(
    database: str, slos: Mapping[str, Slo], edges: Sequence[datetime], now: datetime
) -> tuple[str, dict[str, Any]]:
    """Per account with an SLO: dispatches judged (`n<i>`) and breaching (`b<i>`) in each
    slice between consecutive `edges`, by when each was judged (its 2xx came back, or it
    had been owed `max_undelivered_seconds`): a slow receiver's lag counts when it ends."""
    longest = max(s.max_undelivered_seconds for s in slos.values())
    period = Period(edges[0] - timedelta(seconds=longest), edges[-1])
    inner, params = _dispatches(database, SlaScope(period, slos), now)
    columns = []
    for i in range(len(edges) - 1):
        params[f"e{i}"] = ts_param(edges[i])
        params[f"e{i + 1}"] = ts_param(edges[i + 1])
        inside = f"judged_at >= {{e{i}:{TS_TYPE}}} AND judged_at < {{e{i + 1}:{TS_TYPE}}}"
        columns.append(f"countIf({inside}) AS n{i}")
        columns.append(f"countIf({inside} AND breached) AS b{i}")
    sql = (
        f"SELECT account_id AS account, {', '.join(columns)} FROM ({inner}) "
        f"WHERE has_slo AND (received OR open) AND judged_at <= {{now:{TS_TYPE}}} "
        "GROUP BY account_id"
    )
    return sql, params


def received_between(
    database: str, start: datetime, end: datetime, limit: int
) -> tuple[str, dict[str, Any]]:
    """The stages (ms) of dispatches whose first 2xx came back in [start, end) and whose
    event is stored (for the lag histograms)."""
    scope = SlaScope(Period(start - timedelta(days=schema.RETENTION_DAYS), end), {})
    ok_in = f"first_ok_at >= {{r_start:{TS_TYPE}}} AND first_ok_at < {{r_end:{TS_TYPE}}}"
    inner, params = _dispatches(database, scope, end, ok_in)
    params.update(r_start=ts_param(start), r_end=ts_param(end))
    sql = (
        f"SELECT account_id, producer_ms, platform_ms, customer_ms, total_ms FROM ({inner}) "
        f"WHERE {ok_in} LIMIT {int(limit)}"
    )
    return sql, params


def states(database: str) -> str:
    """Each account's latest SLA state and how many changes it went through."""
    return (
        "SELECT account_id AS account, argMax(state, at) AS state, count() AS changes "
        f"FROM {database}.{schema.SLA_HEALTH_TABLE} GROUP BY account_id"
    )
