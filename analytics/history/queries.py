"""History queries as (SQL, parameters): pure builders, tested without ClickHouse."""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from analytics.errors import BadQuery
from analytics.history import schema

StatusFilter = Literal["all", "success", "failure", "held", "superseded", "regressed"]
# Rows of attempts really made: held, superseded and regressed dispatches were never sent.
SENT = "status IN ('success', 'failure')"
MAX_LIMIT = 500
TS_TYPE = "DateTime64(3, 'UTC')"  # the type of every time parameter
# Columns are selected under their own names, never as aliases of expressions: ClickHouse
# resolves aliases in WHERE too, which would turn the keyset filter into a text comparison.
ITEM_COLUMNS = ", ".join(schema.ITEM_FIELDS)


@dataclass(frozen=True)
class Period:
    """A half-open time range [start, end) within the retained history."""

    start: datetime
    end: datetime

    @classmethod
    def parse(
        cls,
        start: datetime | None,
        end: datetime | None,
        now: datetime,
        default_days: int = 7,
        kept_days: int = schema.RETENTION_DAYS,
    ) -> Period:
        """Validate a from/to pair (defaults: the last `default_days` days up to now)."""
        end = _utc(end) if end else now
        oldest = now - timedelta(days=kept_days, hours=1)
        if end <= oldest:  # checked first: `to` minus the default days may not be a date
            raise _older_than_kept("to", kept_days, oldest)
        start = _utc(start) if start else end - timedelta(days=default_days)
        if start >= end:
            raise BadQuery(f"'from' ({start.isoformat()}) must be before 'to' ({end.isoformat()})")
        if start < oldest:
            raise _older_than_kept("from", kept_days, oldest)
        return cls(start, end)


def _older_than_kept(name: str, kept_days: int, oldest: datetime) -> BadQuery:
    return BadQuery(
        f"'{name}' is older than the {kept_days} days of history kept; "
        f"use a date after {oldest.date().isoformat()}"
    )


@dataclass(frozen=True)
class Cursor:
    """Where a page ended: the last row's time and attempt id (rows go newest first)."""

    at: datetime
    attempt_id: str

    def encode(self) -> str:
        raw = json.dumps([self.at.isoformat(), self.attempt_id]).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> Cursor:
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
            at, attempt_id = json.loads(raw)
            return cls(_utc(datetime.fromisoformat(at)), str(uuid.UUID(attempt_id)))
        except (ValueError, TypeError, binascii.Error):
            raise BadQuery(
                "'cursor' is not one this API returned; start again without it"
            ) from None


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def ts_param(value: datetime) -> str:
    """A time as a `TS_TYPE` query parameter (UTC, milliseconds)."""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


_KINDS = {
    "account_id": "String",
    "status": "String",
    "reason": "String",
    "dispatch_id": "String",
    "order_id": "String",
    "event_type": "String",
    "rule_id": "UInt64",
}


# An order search: one order number, or the orders a search key found (any of them).
Orders = str | tuple[str, ...] | None
# One rule, or the rules a portal link is limited to (any of them).
Rules = int | tuple[int, ...] | None


def _equal_to(filters: dict[str, Any], clauses: list[str], params: dict[str, Any]) -> None:
    """Add `column = {column:Type}` for every filter that is set (`IN` for a tuple of values:
    the orders a search key found)."""
    for column, value in filters.items():
        if isinstance(value, tuple):
            names = [f"{column}{i}" for i in range(len(value))]
            params.update(zip(names, value, strict=True))
            listed = ", ".join(f"{{{n}:{_KINDS[column]}}}" for n in names)
            clauses.append(f"{column} IN ({listed})")
        elif value is not None:
            clauses.append(f"{column} = {{{column}:{_KINDS[column]}}}")
            params[column] = value


def _where(
    period: Period, status: StatusFilter, order_id: Orders, **filters: Any
) -> tuple[list[str], dict[str, Any]]:
    clauses = [f"dispatched_at >= {{start:{TS_TYPE}}}", f"dispatched_at < {{end:{TS_TYPE}}}"]
    params: dict[str, Any] = {"start": ts_param(period.start), "end": ts_param(period.end)}
    filters.update(status=None if status == "all" else status, order_id=order_id or None)
    _equal_to(filters, clauses, params)
    return clauses, params


def keyset_after(
    cursor: Cursor | None, at: str, row_id: str, clauses: list[str], params: dict[str, Any]
) -> None:
    """Add the condition for rows after `cursor` in (at, id) DESC order (keyset paging)."""
    if cursor is not None:
        clauses.append(f"({at}, {row_id}) < ({{c_at:{TS_TYPE}}}, {{c_id:UUID}})")
        params.update(c_at=ts_param(cursor.at), c_id=cursor.attempt_id)


def dispatches(
    database: str,
    period: Period,
    status: StatusFilter = "all",
    order_id: Orders = None,
    limit: int = 50,
    cursor: Cursor | None = None,
    **filters: Any,
) -> tuple[str, dict[str, Any]]:
    """One page of attempts, newest first; fetches one extra row to know if more follow.

    `filters`: exact `reason` and/or `rule_id` (None = any).
    """
    if not 1 <= limit <= MAX_LIMIT:
        raise BadQuery(f"'limit' must be between 1 and {MAX_LIMIT}")
    clauses, params = _where(period, status, order_id, **filters)
    keyset_after(cursor, "dispatched_at", "attempt_id", clauses, params)
    sql = (
        f"SELECT {ITEM_COLUMNS} FROM {database}.{schema.TABLE} WHERE {' AND '.join(clauses)} "
        f"ORDER BY dispatched_at DESC, attempt_id DESC LIMIT {limit + 1}"
    )
    if filters.get("account_id") is not None and not order_id:
        # Reading the table in time order would win over the `by_account` projection and
        # walk every account's rows to find one account's page (84 vs 24 ms on 30 M rows).
        sql += " SETTINGS optimize_read_in_order = 0"
    return sql, params


def counts(
    database: str,
    period: Period,
    group_by: tuple[str, ...],
    filters: dict[str, Any] | None = None,
) -> tuple[str, dict[str, Any]]:
    """Attempt counts `n` per `group_by` columns in a period.

    Whole hours are counted from the `account_hourly` projection (a few rows per hour instead of
    every attempt); the partial hours at either edge, and any order search, read rows.
    """
    filters = {k: v for k, v in (filters or {}).items() if v is not None}
    keys = ", ".join(group_by)
    parts: list[str] = []
    params: dict[str, Any] = {}
    # The hourly projection has no order: an order search reads rows.
    rows_only = "order_id" in filters
    for n, (lo, hi, hourly) in enumerate(_slices(period, rows_only)):
        column = "toStartOfHour(dispatched_at)" if hourly else "dispatched_at"
        clauses = [f"{column} >= {{lo{n}:{TS_TYPE}}}", f"{column} < {{hi{n}:{TS_TYPE}}}"]
        params.update({f"lo{n}": ts_param(lo), f"hi{n}": ts_param(hi)})
        _equal_to(filters, clauses, params)
        parts.append(
            f"SELECT {keys}, count() AS n FROM {database}.{schema.TABLE} "
            f"WHERE {' AND '.join(clauses)} GROUP BY {keys}"
        )
    # Aliases differ from column names: ClickHouse would resolve them in WHERE (see above).
    outer = ", ".join(f"{k} AS {k}_" for k in group_by)
    sql = f"SELECT {outer}, sum(n) AS n FROM ({' UNION ALL '.join(parts)}) GROUP BY {keys}"
    return sql, params


def _slices(period: Period, rows_only: bool) -> list[tuple[datetime, datetime, bool]]:
    """[lo, hi, whole_hours] pieces covering the period: edges by row, whole hours hourly."""
    first = period.start.replace(minute=0, second=0, microsecond=0)
    if first < period.start:
        first += timedelta(hours=1)
    last = period.end.replace(minute=0, second=0, microsecond=0)
    if rows_only or first >= last:
        return [(period.start, period.end, False)]
    pieces = [(first, last, True)]
    if period.start < first:
        pieces.append((period.start, first, False))
    if last < period.end:
        pieces.append((last, period.end, False))
    return pieces


def summary(
    database: str, period: Period, order_id: Orders = None, **filters: Any
) -> tuple[str, dict[str, Any]]:
    """Attempts per status in a period (rows `status_`, `n`)."""
    return counts(database, period, ("status",), {"order_id": order_id, **filters})


def failure_breakdown(
    database: str, period: Period, order_id: Orders = None, **filters: Any
) -> tuple[str, dict[str, Any]]:
    """Failed attempts per reason and rule in a period (rows `reason_`, `rule_id_`, `n`)."""
    wanted = {"status": "failure", "order_id": order_id, **filters}
    return counts(database, period, ("reason", "rule_id"), wanted)


def regression_breakdown(
    database: str,
    period: Period,
    dimension: tuple[str, ...],
    order_id: Orders = None,
    **filters: Any,
) -> tuple[str, dict[str, Any]]:
    """Regressed dispatches per value of a payload path, rule and reason (`after <status>`):
    rows `value_` (the value's JSON text, empty when absent), `rule_id_`, `reason_`, `n`."""
    clauses, params = _where(period, "regressed", order_id, **filters)
    names = [f"d{i}" for i in range(len(dimension))]
    params.update(zip(names, dimension, strict=True))
    path = ", ".join(f"{{{n}:String}}" for n in names)
    sql = (
        f"SELECT JSONExtractRaw(event_json, {path}) AS value_, rule_id AS rule_id_, "
        f"reason AS reason_, count() AS n FROM {database}.{schema.TABLE} "
        f"WHERE {' AND '.join(clauses)} GROUP BY value_, rule_id_, reason_ "
        "ORDER BY n DESC LIMIT 10000"
    )
    return sql, params


def attempts_of(database: str, dispatch_id: str) -> tuple[str, dict[str, Any]]:
    """Every attempt of one dispatch, oldest first, with request and response excerpts."""
    sql = (
        f"SELECT {ITEM_COLUMNS}, request_excerpt, response_excerpt, request_headers "
        f"FROM {database}.{schema.TABLE} WHERE dispatch_id = {{dispatch_id:String}} "
        "ORDER BY dispatched_at, attempt_id LIMIT 1000"
    )
    return sql, {"dispatch_id": dispatch_id}


def stored_attempts(
    database: str, attempt_ids: list[str], start: datetime, end: datetime
) -> tuple[str, dict[str, Any]]:
    """Which of these attempt ids already have a row made in [start, end].

    Literals, not parameters: the sink runs this on every batch, also on servers without
    query parameters; every id is parsed as a UUID first, so nothing else gets in.
    """
    ids = ", ".join(f"toUUID('{uuid.UUID(i)}')" for i in attempt_ids)
    first = start.astimezone(UTC).replace(microsecond=0)
    last = end.astimezone(UTC).replace(microsecond=0) + timedelta(seconds=1)
    sql = (
        f"SELECT DISTINCT attempt_id FROM {database}.{schema.TABLE} "
        f"WHERE dispatched_at >= '{first:%Y-%m-%d %H:%M:%S}' "
        f"AND dispatched_at < '{last:%Y-%m-%d %H:%M:%S}' AND attempt_id IN ({ids})"
    )
    return sql, {}


def failure_rate(total: int, failed: int) -> float:
    """Failed share of attempts, 0.0 for an empty period, rounded to 4 places."""
    return round(failed / total, 4) if total else 0.0


_LAST = "(dispatched_at, attempt)"
# Aliases differ from column names: ClickHouse would resolve them in WHERE (see above).
RESEND_COLUMNS = (
    f"dispatch_id, argMax(event_json, {_LAST}) AS last_event, any(rule_id) AS rule, "
    "max(attempt) AS last_attempt"
)
# The same without the events: a bulk resend lists its dispatches first, then reads the
# events a chunk at a time (`event_queries.last_attempts` with the event).
RESEND_ID_COLUMNS = "dispatch_id, any(rule_id) AS rule, max(attempt) AS last_attempt"


MAX_KEY_ORDERS = 100  # orders one search value may name (a tracking code names one)


def orders_with_key(
    database: str, value: str, account_id: str | None
) -> tuple[str, dict[str, Any]]:
    """The orders whose events carry `value` at one of their account's search keys."""
    clauses, params = ["value = {value:String}"], {"value": value}
    _equal_to({"account_id": account_id}, clauses, params)
    sql = (
        f"SELECT order_id, any(path) AS path FROM {database}.{schema.SEARCH_TABLE} "
        f"WHERE {' AND '.join(clauses)} GROUP BY order_id ORDER BY order_id "
        f"LIMIT {MAX_KEY_ORDERS}"
    )
    return sql, params


def resend_candidates(
    database: str,
    since: datetime,
    dispatch_id: str | None = None,
    order_id: str | None = None,
    event_type: str | None = None,
    rule_id: int | None = None,
    limit: int = 1000,
    account_id: str | None = None,
) -> tuple[str, dict[str, Any]]:
    """Dispatches to resend by id or by order (optionally one event type and/or rule)."""
    clauses = [f"dispatched_at >= {{since:{TS_TYPE}}}"]
    params: dict[str, Any] = {"since": ts_param(since)}
    filters = {
        "dispatch_id": dispatch_id,
        "order_id": order_id,
        "event_type": event_type,
        "rule_id": rule_id,
        "account_id": account_id,
    }
    _equal_to(filters, clauses, params)
    sql = (
        f"SELECT {RESEND_COLUMNS} FROM {database}.{schema.TABLE} "
        f"WHERE {' AND '.join(clauses)} GROUP BY dispatch_id LIMIT {limit + 1}"
    )
    return sql, params


def final_failures(
    database: str,
    period: Period,
    rule_id: int | None = None,
    event_type: str | None = None,
    reason: str | None = None,
    order_id: str | None = None,
    limit: int = 10000,
    account_id: str | None = None,
    columns: str = RESEND_COLUMNS,
) -> tuple[str, dict[str, Any]]:
    """Dispatches whose last attempt, made in the period, failed for good."""
    clauses = [f"dispatched_at >= {{start:{TS_TYPE}}}"]
    params: dict[str, Any] = {"start": ts_param(period.start), "end": ts_param(period.end)}
    wanted = {
        "rule_id": rule_id,
        "event_type": event_type,
        "order_id": order_id,
        "account_id": account_id,
    }
    _equal_to(wanted, clauses, params)
    having = [
        f"argMax(status, {_LAST}) = 'failure'",
        f"argMax(final, {_LAST})",
        f"max(dispatched_at) < {{end:{TS_TYPE}}}",
    ]
    if reason is not None:
        having.append(f"argMax(reason, {_LAST}) = {{reason:String}}")
        params["reason"] = reason
    sql = (
        f"SELECT {columns} FROM {database}.{schema.TABLE} "
        f"WHERE {' AND '.join(clauses)} GROUP BY dispatch_id HAVING {' AND '.join(having)} "
        f"ORDER BY dispatch_id LIMIT {limit + 1}"
    )
    return sql, params


def failing_rules(
    database: str, since: datetime, streak_before: datetime
) -> tuple[str, dict[str, Any]]:
    """Rules with no success after their first failure, and that failure before a cutoff.

    Only automatic attempts count: a manual resend says nothing about an endpoint's health.
    """
    sql = (
        "SELECT a.rule_id AS rule, min(a.dispatched_at) AS streak_start, count() AS failures "
        f"FROM {database}.{schema.TABLE} AS a INNER JOIN ("
        "  SELECT rule_id, maxIf(dispatched_at, status = 'success') AS last_ok "
        f"  FROM {database}.{schema.TABLE} "
        f"  WHERE NOT manual AND dispatched_at >= {{since:{TS_TYPE}}} GROUP BY rule_id"
        ") AS s ON a.rule_id = s.rule_id "
        f"WHERE NOT a.manual AND a.status = 'failure' AND a.dispatched_at >= {{since:{TS_TYPE}}} "
        "AND a.dispatched_at > s.last_ok "
        f"GROUP BY a.rule_id HAVING streak_start < {{cutoff:{TS_TYPE}}}"
    )
    return sql, {"since": ts_param(since), "cutoff": ts_param(streak_before)}


def rule_slices(database: str, edges: list[datetime]) -> tuple[str, dict[str, Any]]:
    """Automatic attempts and failures per rule in each slice between consecutive `edges`
    (rows `rule`, `n0`, `f0`, `n1`, `f1`, ...); account notifications left out."""
    params = {f"e{i}": ts_param(edge) for i, edge in enumerate(edges)}
    columns = []
    for i in range(len(edges) - 1):
        inside = f"dispatched_at >= {{e{i}:{TS_TYPE}}} AND dispatched_at < {{e{i + 1}:{TS_TYPE}}}"
        columns.append(f"countIf({inside}) AS n{i}")
        columns.append(f"countIf({inside} AND status = 'failure') AS f{i}")
    last = len(edges) - 1
    sql = (
        f"SELECT rule_id AS rule, {', '.join(columns)} "
        f"FROM {database}.{schema.TABLE} WHERE NOT manual AND rule_id > 0 AND {SENT} "
        f"AND dispatched_at >= {{e0:{TS_TYPE}}} AND dispatched_at < {{e{last}:{TS_TYPE}}} "
        "GROUP BY rule_id"
    )
    return sql, params


def rule_states(database: str) -> str:
    """Each rule's latest health state and how many changes it went through."""
    return (
        "SELECT rule_id AS rule, argMax(state, at) AS state, count() AS changes "
        f"FROM {database}.{schema.HEALTH_TABLE} GROUP BY rule_id"
    )
