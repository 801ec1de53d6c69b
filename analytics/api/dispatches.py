"""Delivery history: `/api/v1/dispatches`, its summary, and one dispatch's attempts."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query

from analytics import queries
from analytics.api.deps import Services, services
from analytics.errors import BadQuery
from disparo.schemas import now_utc

router = APIRouter(tags=["dispatches"])
FromQ = Annotated[datetime | None, Query(alias="from", description="RFC 3339; default 7 days ago")]
ToQ = Annotated[datetime | None, Query(alias="to", description="RFC 3339; default now")]
OrderQ = Annotated[str | None, Query(max_length=200, description="exact order number")]


def _period(start: datetime | None, end: datetime | None) -> queries.Period:
    try:
        return queries.Period.parse(start, end, now_utc())
    except BadQuery as exc:
        raise HTTPException(400, str(exc)) from None


def _iso(value: datetime | str) -> str:
    """RFC 3339 in UTC with milliseconds, from a driver datetime or chdb's text."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _item(row: dict[str, Any]) -> dict[str, Any]:
    row["dispatched_at"] = _iso(row["dispatched_at"])
    row["attempt_id"] = str(row["attempt_id"])
    row["http_status"] = row["http_status"] or None
    row["error"] = row["error"] or None
    row["order_status"] = row["order_status"] or None
    row["manual"] = bool(row["manual"])
    row["final"] = bool(row["final"])
    return row


@router.get("/api/v1/dispatches")
def list_dispatches(
    svc: Annotated[Services, Depends(services)],
    start: FromQ = None,
    end: ToQ = None,
    status: queries.StatusFilter = "all",
    order_id: OrderQ = None,
    limit: Annotated[int, Query(ge=1, le=queries.MAX_LIMIT)] = 50,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> dict[str, Any]:
    """Attempts in a period, newest first, one page at a time (follow `next_cursor`)."""
    period = _period(start, end)
    try:
        after = queries.Cursor.decode(cursor) if cursor else None
        sql, params = queries.dispatches(svc.store.database, period, status, order_id, limit, after)
    except BadQuery as exc:
        raise HTTPException(400, str(exc)) from None
    rows = [_item(r) for r in svc.store.select(sql, params)]
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        last = rows[-1]
        at = datetime.fromisoformat(last["dispatched_at"])
        next_cursor = queries.Cursor(at, last["attempt_id"]).encode()
    return {"items": rows, "next_cursor": next_cursor}


@router.get("/api/v1/dispatches/summary")
def dispatch_summary(
    svc: Annotated[Services, Depends(services)],
    start: FromQ = None,
    end: ToQ = None,
    order_id: OrderQ = None,
) -> dict[str, Any]:
    """Total attempts, failed attempts and the failure rate of a period."""
    sql, params = queries.summary(svc.store.database, _period(start, end), order_id)
    row = svc.store.select(sql, params)[0]
    total, failed = int(row["total"]), int(row["failed"])
    return {"total": total, "failed": failed, "failure_rate": queries.failure_rate(total, failed)}


@router.get("/api/v1/dispatches/{dispatch_id}")
def dispatch_detail(
    dispatch_id: str, svc: Annotated[Services, Depends(services)]
) -> dict[str, Any]:
    """Every attempt of one dispatch, with request and response excerpts."""
    sql, params = queries.attempts_of(svc.store.database, dispatch_id)
    rows = [_item(r) for r in svc.store.select(sql, params)]
    if not rows:
        raise HTTPException(404, f"no attempts recorded for dispatch {dispatch_id!r}")
    return {"dispatch_id": dispatch_id, "attempts": rows}
