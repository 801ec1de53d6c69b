"""Delivery history: `/api/v1/dispatches`, its summary, breakdown, CSV export, and attempts."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse

from analytics import queries, schema
from analytics.api.csv_export import csv_download
from analytics.api.deps import Services, services
from analytics.api.scope import AccountQ, account_scope, visible
from analytics.errors import NotFound
from disparo.access import ApiKey, Permission
from disparo.api_access import allow
from disparo.schemas import now_utc

READER = allow(Permission.READ)  # one callable: FastAPI runs it once per request
Reader = Annotated[ApiKey, Depends(READER)]
router = APIRouter(tags=["dispatches"], dependencies=[Depends(READER)])
FromQ = Annotated[datetime | None, Query(alias="from", description="RFC 3339; default 7 days ago")]
ToQ = Annotated[datetime | None, Query(alias="to", description="RFC 3339; default now")]
OrderQ = Annotated[str | None, Query(max_length=200, description="exact order number")]


def _period(start: datetime | None, end: datetime | None) -> queries.Period:
    return queries.Period.parse(start, end, now_utc())


def iso_text(value: datetime | str) -> str:
    """RFC 3339 in UTC with milliseconds, from a driver datetime or chdb's text."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _item(row: dict[str, Any]) -> dict[str, Any]:
    row["dispatched_at"] = iso_text(row["dispatched_at"])
    row["attempt_id"] = str(row["attempt_id"])
    row["http_status"] = row["http_status"] or None
    row["error"] = row["error"] or None
    row["order_status"] = row["order_status"] or None
    row["manual"] = bool(row["manual"])
    row["final"] = bool(row["final"])
    return row


ReasonQ = Annotated[
    str | None, Query(max_length=64, description="failure reason, e.g. timeout or http_5xx")
]
RuleQ = Annotated[
    int | None, Query(ge=0, le=2**63 - 1, description="event rule id (0: account notifications)")
]
EXPORT_ROWS = 100_000
CSV_COLUMNS = schema.CSV_FIELDS


@dataclass(frozen=True)
class HistoryFilter:
    """What the list and its CSV export are narrowed to."""

    period: queries.Period
    status: queries.StatusFilter
    order_id: str | None
    reason: str | None
    rule_id: int | None
    account_id: str | None = None


def history_filter(
    key: Reader,
    start: FromQ = None,
    end: ToQ = None,
    status: queries.StatusFilter = "all",
    order_id: OrderQ = None,
    reason: ReasonQ = None,
    rule_id: RuleQ = None,
    account_id: AccountQ = None,
) -> HistoryFilter:
    scope = account_scope(key, account_id)
    return HistoryFilter(_period(start, end), status, order_id, reason, rule_id, scope)


Filter = Annotated[HistoryFilter, Depends(history_filter)]


def _page(
    svc: Services, f: HistoryFilter, limit: int, cursor: str | None
) -> tuple[list[dict[str, Any]], str | None]:
    after = queries.Cursor.decode(cursor) if cursor else None
    sql, params = queries.dispatches(
        svc.store.database,
        f.period,
        f.status,
        f.order_id,
        limit,
        after,
        reason=f.reason,
        rule_id=f.rule_id,
        account_id=f.account_id,
    )
    rows = [_item(r) for r in svc.store.select(sql, params)]
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    last = rows[-1]
    at = datetime.fromisoformat(last["dispatched_at"])
    return rows, queries.Cursor(at, last["attempt_id"]).encode()


@router.get("/api/v1/dispatches")
def list_dispatches(
    svc: Annotated[Services, Depends(services)],
    f: Filter,
    limit: Annotated[int, Query(ge=1, le=queries.MAX_LIMIT)] = 50,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> dict[str, Any]:
    """Attempts in a period, newest first, one page at a time (follow `next_cursor`)."""
    rows, next_cursor = _page(svc, f, limit, cursor)
    return {"items": rows, "next_cursor": next_cursor}


@router.get(
    "/api/v1/dispatches/export.csv",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}, "description": "the filtered list as CSV"}},
)
def export_dispatches(svc: Annotated[Services, Depends(services)], f: Filter) -> StreamingResponse:
    """The filtered list as CSV, newest first, up to 100,000 attempts."""
    name = f"dispatches-{f.period.start:%Y%m%d}-{f.period.end:%Y%m%d}.csv"
    return csv_download(
        _page(svc, f, queries.MAX_LIMIT, None),
        lambda after: _page(svc, f, queries.MAX_LIMIT, after),
        CSV_COLUMNS,
        EXPORT_ROWS,
        name,
    )


@router.get("/api/v1/dispatches/summary")
def dispatch_summary(
    key: Reader,
    svc: Annotated[Services, Depends(services)],
    start: FromQ = None,
    end: ToQ = None,
    order_id: OrderQ = None,
    reason: ReasonQ = None,
    rule_id: RuleQ = None,
    account_id: AccountQ = None,
) -> dict[str, Any]:
    """Total attempts, failed attempts and the failure rate of a period."""
    period = _period(start, end)
    account_id = account_scope(key, account_id)
    sql, params = queries.summary(
        svc.store.database,
        period,
        order_id,
        reason=reason,
        rule_id=rule_id,
        account_id=account_id,
    )
    by_status = {r["status_"]: int(r["n"]) for r in svc.store.select(sql, params)}
    # Held and superseded dispatches were never sent: not in the total, not failures.
    total = by_status.get("success", 0) + by_status.get("failure", 0)
    failed = by_status.get("failure", 0)
    return {
        "total": total,
        "failed": failed,
        "failure_rate": queries.failure_rate(total, failed),
        "held": by_status.get("held", 0),
        "superseded": by_status.get("superseded", 0),
    }


@router.get("/api/v1/dispatches/breakdown")
def failure_breakdown(
    key: Reader,
    svc: Annotated[Services, Depends(services)],
    start: FromQ = None,
    end: ToQ = None,
    order_id: OrderQ = None,
    account_id: AccountQ = None,
) -> dict[str, Any]:
    """The period's failed attempts by reason and by rule, largest first."""
    period = _period(start, end)
    account_id = account_scope(key, account_id)
    sql, params = queries.failure_breakdown(
        svc.store.database, period, order_id, account_id=account_id
    )
    by_reason: Counter[str] = Counter()
    by_rule: Counter[int] = Counter()
    for row in svc.store.select(sql, params):
        by_reason[row["reason_"]] += int(row["n"])
        by_rule[int(row["rule_id_"])] += int(row["n"])
    return {
        "failed": sum(by_reason.values()),
        "by_reason": [{"reason": k, "count": n} for k, n in by_reason.most_common()],
        "by_rule": [{"rule_id": k, "count": n} for k, n in by_rule.most_common(50)],
    }


@router.get("/api/v1/dispatches/{dispatch_id}")
def dispatch_detail(
    dispatch_id: str, key: Reader, svc: Annotated[Services, Depends(services)]
) -> dict[str, Any]:
    """Every attempt of one dispatch, with request and response excerpts."""
    sql, params = queries.attempts_of(svc.store.database, dispatch_id)
    rows = [_item(r) for r in svc.store.select(sql, params) if visible(key, r["account_id"])]
    for row in rows:
        row["request_headers"] = json.loads(row["request_headers"] or "{}")
    if not rows:
        raise NotFound(f"no attempts recorded for dispatch {dispatch_id!r}")
    return {"dispatch_id": dispatch_id, "attempts": rows}
