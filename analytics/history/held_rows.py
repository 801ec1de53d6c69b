"""Held dispatches of paused rules as the history holds them: counted, listed oldest first,
and noted once acted on.

A held row is a dispatch the worker kept instead of sending (status `held`). What became of
it is a row of `held_actions`; a row without one is still held.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from analytics.history import schema
from analytics.history.queries import TS_TYPE, ts_param
from analytics.history.store import Store
from disparo.schemas import now_utc

_COLUMNS = (
    "attempt_id, dispatch_id, attempt, order_id, order_status, event_id, event_type, rule_id, "
    "url, account_id, toUnixTimestamp64Milli(dispatched_at) AS held_ms, event_json"
)


def _pending(database: str, extra: str = "") -> str:
    """A rule's held rows not yet acted on (and matching `extra`, a condition on the rows)."""
    table, actions = f"{database}.{schema.TABLE}", f"{database}.{schema.HELD_TABLE}"
    rule = "rule_id = {rule:UInt64}"
    return (
        f"FROM {table} WHERE status = 'held' AND dispatched_at >= {{since:{TS_TYPE}}} AND {rule}"
        f"{extra} AND attempt_id NOT IN (SELECT attempt_id FROM {actions} WHERE {rule} "
        f"AND held_at >= {{since:{TS_TYPE}}})"
    )


def held_counts(store: Store, now: datetime, rule_id: int | None = None) -> dict[int, int]:
    """Dispatches still held, per rule (of one rule when given): held rows less those acted on.

    Both counts are per hour of holding, so the held rows are counted from the attempts
    table's hourly projection, never by reading the rows of 30 days.
    """
    where = "rule_id = {rule:UInt64}" if rule_id is not None else "1"
    since = f"toStartOfHour({{since:{TS_TYPE}}})"
    held_sql = (
        f"SELECT rule_id AS rule, count() AS n FROM {store.database}.{schema.TABLE} "
        f"WHERE status = 'held' AND toStartOfHour(dispatched_at) >= {since} AND {where} "
        "GROUP BY rule_id"
    )
    acted_sql = (
        f"SELECT rule_id AS rule, count() AS n FROM {store.database}.{schema.HELD_TABLE} "
        f"WHERE toStartOfHour(held_at) >= {since} AND {where} GROUP BY rule_id"
    )
    params = {"since": ts_param(now - timedelta(days=schema.RETENTION_DAYS)), "rule": rule_id or 0}
    held = {int(r["rule"]): int(r["n"]) for r in store.select(held_sql, params)}
    for row in store.select(acted_sql, params):
        rule = int(row["rule"])
        held[rule] = held.get(rule, 0) - int(row["n"])
    return {rule: n for rule, n in held.items() if n > 0}


def oldest_held(
    store: Store,
    rule_id: int,
    now: datetime,
    limit: int,
    before: datetime | None = None,
    with_sent: bool = False,
) -> list[dict[str, Any]]:
    """A rule's held rows, oldest first (only those held before `before`, when given).

    `with_sent` adds a column `sent`: whether the same attempt of the dispatch was sent
    since (released by a process that died before it noted the release).
    """
    extra = ""
    columns = _COLUMNS
    if with_sent:
        columns += (
            ", (dispatch_id, attempt) IN (SELECT dispatch_id, attempt "
            f"FROM {store.database}.{schema.TABLE} WHERE rule_id = {{rule:UInt64}} "
            f"AND status != 'held' AND dispatched_at >= {{since:{TS_TYPE}}}) AS sent"
        )
    params: dict[str, Any] = {
        "since": ts_param(now - timedelta(days=schema.RETENTION_DAYS)), "rule": rule_id,
    }  # fmt: skip
    if before is not None:
        extra = f" AND dispatched_at < {{before:{TS_TYPE}}}"
        params["before"] = ts_param(before)
    sql = (
        f"SELECT {columns} {_pending(store.database, extra)} "
        f"ORDER BY dispatched_at, attempt_id LIMIT {int(limit)}"
    )
    return store.select(sql, params)


def note(store: Store, rows: list[dict[str, Any]], action: str, actor: str) -> None:
    """Record what became of these held rows."""
    at = now_utc()
    notes = [
        {
            "at": at,
            "attempt_id": str(r["attempt_id"]),
            "dispatch_id": r["dispatch_id"],
            "rule_id": int(r["rule_id"]),
            "held_at": datetime.fromtimestamp(int(r["held_ms"]) / 1000, UTC),
            "action": action,
            "actor": actor,
        }
        for r in rows
    ]
    if notes:
        store.insert(schema.HELD_TABLE, notes, f"{action}/{notes[0]['attempt_id']}/{len(notes)}")
