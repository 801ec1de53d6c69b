"""The history as the screen and the API read it: pages, counts, breakdowns, lookups."""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from analytics.history import event_queries, queries
from analytics.history.event_queries import CoverageCursor, RuleScope, RuleShape
from analytics.history.store import Store

Page = tuple[list[dict[str, Any]], str | None]  # rows, and the cursor of the next page
CHUNK = 1000  # ids or order numbers per lookup query


def iso_text(value: datetime | str) -> str:
    """RFC 3339 in UTC with milliseconds, from a driver datetime or chdb's text."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def item_of(row: dict[str, Any]) -> dict[str, Any]:
    """A stored attempt row as the list shows it (times in RFC 3339, empty values as null)."""
    row["dispatched_at"] = iso_text(row["dispatched_at"])
    row["attempt_id"] = str(row["attempt_id"])
    row["http_status"] = row["http_status"] or None
    row["error"] = row["error"] or None
    row["order_status"] = row["order_status"] or None
    row["manual"] = bool(row["manual"])
    row["final"] = bool(row["final"])
    return row


@dataclass(frozen=True)
class HistoryFilter:
    """What the list and its CSV export are narrowed to."""

    period: queries.Period
    status: queries.StatusFilter
    order_id: queries.Orders  # one order, or the orders a search key found
    reason: str | None
    rule_id: queries.Rules
    account_id: str | None = None
    key: str | None = None  # what was searched: an order number or a search key's value
    found: tuple[tuple[str, str], ...] = ()  # the orders the key found: (order_id, path)

    def searched(self) -> dict[str, Any] | None:
        """What a key search looked for and found, for the page to say."""
        if self.key is None:
            return None
        found = [{"order_id": order, "path": path} for order, path in self.found]
        return {"key": self.key, "orders": found}


def by_key(store: Store, f: HistoryFilter, key: str) -> HistoryFilter:
    """The filter narrowed to `key` as an order number or any search key's value."""
    sql, params = queries.orders_with_key(store.database, key, f.account_id)
    found = tuple((str(r["order_id"]), str(r["path"])) for r in store.select(sql, params))
    orders = tuple(dict.fromkeys([key, *(order for order, _ in found)]))
    return dataclasses.replace(f, order_id=orders, key=key, found=found)


def dispatch_page(store: Store, f: HistoryFilter, limit: int, cursor: str | None) -> Page:
    """Attempts of the filter, newest first, one page and the cursor of the next."""
    after = queries.Cursor.decode(cursor) if cursor else None
    sql, params = queries.dispatches(
        store.database,
        f.period,
        f.status,
        f.order_id,
        limit,
        after,
        reason=f.reason,
        rule_id=f.rule_id,
        account_id=f.account_id,
    )
    rows = [item_of(r) for r in store.select(sql, params)]
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    last = rows[-1]
    at = datetime.fromisoformat(last["dispatched_at"])
    return rows, queries.Cursor(at, last["attempt_id"]).encode()


def summary(store: Store, f: HistoryFilter) -> dict[str, Any]:
    """Total attempts, failed attempts and the failure rate of a period."""
    sql, params = queries.summary(
        store.database,
        f.period,
        f.order_id,
        reason=f.reason,
        rule_id=f.rule_id,
        account_id=f.account_id,
    )
    by_status = {r["status_"]: int(r["n"]) for r in store.select(sql, params)}
    # Held, superseded and regressed dispatches were never sent: not in the total, not failures.
    total = by_status.get("success", 0) + by_status.get("failure", 0)
    failed = by_status.get("failure", 0)
    return {
        "total": total,
        "failed": failed,
        "failure_rate": queries.failure_rate(total, failed),
        "held": by_status.get("held", 0),
        "superseded": by_status.get("superseded", 0),
        "regressed": by_status.get("regressed", 0),
    }


def breakdown(store: Store, f: HistoryFilter) -> dict[str, Any]:
    """The period's failed attempts by reason and by rule, largest first."""
    sql, params = queries.failure_breakdown(
        store.database, f.period, f.order_id, account_id=f.account_id, rule_id=f.rule_id
    )
    by_reason: Counter[str] = Counter()
    by_rule: Counter[int] = Counter()
    for row in store.select(sql, params):
        by_reason[row["reason_"]] += int(row["n"])
        by_rule[int(row["rule_id_"])] += int(row["n"])
    return {
        "failed": sum(by_reason.values()),
        "by_reason": [{"reason": k, "count": n} for k, n in by_reason.most_common()],
        "by_rule": [{"rule_id": k, "count": n} for k, n in by_rule.most_common(50)],
    }


def regressions(store: Store, f: HistoryFilter, dimension: str) -> dict[str, Any]:
    """The period's regressed dispatches by a payload path's value, by rule and by the status
    the customer held, largest first."""
    path = tuple(dimension.split("."))  # payload.a.b: keys of the stored event JSON
    sql, params = queries.regression_breakdown(
        store.database, f.period, path, f.order_id, account_id=f.account_id, rule_id=f.rule_id
    )
    by_value: Counter[str | None] = Counter()
    by_rule: Counter[int] = Counter()
    by_after: Counter[str] = Counter()
    for row in store.select(sql, params):
        n = int(row["n"])
        by_value[_json_text(str(row["value_"]))] += n
        by_rule[int(row["rule_id_"])] += n
        by_after[str(row["reason_"]).removeprefix("after ")] += n
    return {
        "regressed": sum(by_rule.values()),
        "dimension": dimension,
        "by_value": [{"value": k, "count": n} for k, n in by_value.most_common(50)],
        "by_rule": [{"rule_id": k, "count": n} for k, n in by_rule.most_common(50)],
        "by_after": [{"status": k, "count": n} for k, n in by_after.most_common(50)],
    }


def _json_text(raw: str) -> str | None:
    """A payload value as the page shows it: strings unquoted, others as JSON; None if absent."""
    if not raw:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        return raw
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def attempts_of(store: Store, dispatch_id: str) -> list[dict[str, Any]]:
    """Every attempt of one dispatch, with its request headers parsed."""
    sql, params = queries.attempts_of(store.database, dispatch_id)
    rows = [item_of(r) for r in store.select(sql, params)]
    for row in rows:
        row["request_headers"] = json.loads(row["request_headers"] or "{}")
    return rows


def _coverage_item(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "order_id": row["order_id"],
        "rule_id": int(row["rule_id"]),
        "account_id": row["account_id"],
        "latest_event_type": row["latest_event_type"],
        "latest_order_status": row["latest_order_status"] or None,
        "latest_at": iso_text(row["latest_at"]),
        "state": row["state"],
        "attempts": int(row["attempts"]),
    }


def undelivered_page(
    store: Store,
    period: queries.Period,
    scopes: list[RuleScope],
    account_id: str | None,
    limit: int,
    cursor: str | None,
) -> Page:
    """(order, rule) pairs whose latest matching event of the period was not delivered."""
    if not scopes:
        return [], None
    after = CoverageCursor.decode(cursor) if cursor else None
    sql, params = event_queries.undelivered(
        store.database, period, scopes, limit, after, account_id
    )
    items = [_coverage_item(r) for r in store.select(sql, params)]
    if len(items) <= limit:
        return items, None
    last = items[limit - 1]
    return items[:limit], CoverageCursor(
        last["latest_at"].replace("Z", "+00:00"), last["order_id"], last["rule_id"]
    ).encode()


def dry_run(store: Store, period: queries.Period, matcher: RuleShape) -> dict[str, Any]:
    """Events and orders of a period a rule would match, with a sample of 20."""
    [row] = store.select(*event_queries.dry_run(store.database, period, matcher))
    sample = [
        {
            "event_id": item[0],
            "order_id": item[1],
            "event_type": item[2],
            "order_status": item[3] or None,
            "published_at": iso_text(item[4]),
        }
        for item in row["sample"]
    ]
    return {
        "matched_events": int(row["matched_events"]),
        "matched_orders": int(row["matched_orders"]),
        "sample": sample,
        "from": iso_text(period.start),
        "to": iso_text(period.end),
    }


def recorded_attempts(store: Store, dispatch_ids: list[str], since: datetime) -> dict[str, int]:
    """The highest attempt number recorded since `since`, per dispatch that has one."""
    last: dict[str, int] = {}
    for i in range(0, len(dispatch_ids), CHUNK):
        sql, params = event_queries.last_attempts(
            store.database, dispatch_ids[i : i + CHUNK], since
        )
        last.update({r["dispatch_id"]: int(r["last_attempt"]) for r in store.select(sql, params)})
    return last
