"""An order's stored events and attempts, for its story: SQL builders and their reads."""

from __future__ import annotations

import json
from typing import Any

from analytics.history import schema
from analytics.history.queries import ITEM_COLUMNS, TS_TYPE, Period, ts_param
from analytics.history.store import Store
from analytics.history.views import iso_text, item_of

MAX_EVENTS = 200  # events of one order in a story; an order has a handful
MAX_ATTEMPTS = 1000  # attempts of one order in a story


def _where(
    time_column: str, order_id: str, account_id: str | None, period: Period
) -> tuple[str, dict[str, Any]]:
    params: dict[str, Any] = {
        "order": order_id,
        "start": ts_param(period.start),
        "end": ts_param(period.end),
    }
    clauses = [
        "order_id = {order:String}",
        f"{time_column} >= {{start:{TS_TYPE}}}",
        f"{time_column} < {{end:{TS_TYPE}}}",
    ]
    if account_id is not None:
        clauses.insert(0, "account_id = {account:String}")
        params["account"] = account_id
    return " AND ".join(clauses), params


def events_sql(
    database: str, order_id: str, account_id: str | None, period: Period
) -> tuple[str, dict[str, Any]]:
    """The order's events of the period, each once (the table replaces repeats only when it
    merges), oldest first; one more than `MAX_EVENTS` tells more were left out."""
    where, params = _where("published_at", order_id, account_id, period)
    sql = (
        "SELECT toString(event_id) AS event_id_, min(published_at) AS first_at, "
        "any(event_json) AS json_, any(event_type) AS type_, any(order_status) AS status_, "
        "any(occurred_at) AS occurred_, any(account_id) AS account_ "
        f"FROM {database}.{schema.EVENTS_TABLE} WHERE {where} "
        f"GROUP BY event_id ORDER BY first_at, event_id LIMIT {MAX_EVENTS + 1}"
    )
    return sql, params


def attempts_sql(
    database: str, order_id: str, account_id: str | None, period: Period
) -> tuple[str, dict[str, Any]]:
    """The order's attempts of the period with their answers, oldest first."""
    where, params = _where("dispatched_at", order_id, account_id, period)
    sql = (
        f"SELECT {ITEM_COLUMNS}, response_excerpt, toString(event_id) AS event_id_ "
        f"FROM {database}.{schema.TABLE} WHERE {where} "
        f"ORDER BY dispatched_at, attempt_id LIMIT {MAX_ATTEMPTS + 1}"
    )
    return sql, params


def order_events(
    store: Store, order_id: str, account_id: str | None, period: Period
) -> list[dict[str, Any]]:
    """The stored events of an order: the event as published, with when it was stored."""
    rows = store.select(*events_sql(store.database, order_id, account_id, period))
    return [{**_stored(r), "published_at": iso_text(r["first_at"])} for r in rows]


def _stored(row: dict[str, Any]) -> dict[str, Any]:
    """The event as published; what is left of it when its order was expunged."""
    if row["json_"] != schema.EXPUNGED:
        return dict(json.loads(row["json_"]))
    return {
        "event_id": row["event_id_"],
        "event_type": row["type_"],
        "order_status": row["status_"] or None,
        "occurred_at": iso_text(row["occurred_"]),
        "account_id": row["account_"],
        "payload": None,
        "expunged": True,
    }


def order_attempts(
    store: Store, order_id: str, account_id: str | None, period: Period
) -> list[dict[str, Any]]:
    """The attempts of an order as the list shows them, with the answer's excerpt."""
    rows = store.select(*attempts_sql(store.database, order_id, account_id, period))
    for row in rows:
        row["event_id"] = row.pop("event_id_")
    return [item_of(r) for r in rows]
