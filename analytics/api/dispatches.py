"""Delivery history: `/api/v1/dispatches`, its summary, breakdown, CSV export, and attempts."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import Depends, Query
from fastapi.responses import StreamingResponse

from analytics.api.csv_export import csv_download
from analytics.api.deps import (
    READER,
    AccountQ,
    CursorQ,
    FromQ,
    KeyQ,
    OrderQ,
    Reader,
    ReasonQ,
    RuleQ,
    Svc,
    ToQ,
)
from analytics.api.routing import api_router
from analytics.control.scope import account_scope, visible
from analytics.errors import BadQuery, NotFound
from analytics.history import queries, schema, views
from analytics.history.views import HistoryFilter
from disparo.schemas import now_utc

router = api_router(tags=["dispatches"], dependencies=[Depends(READER)])
EXPORT_ROWS = 100_000
CSV_COLUMNS = schema.CSV_FIELDS


def history_filter(
    key: Reader,
    svc: Svc,
    start: FromQ = None,
    end: ToQ = None,
    status: queries.StatusFilter = "all",
    order_id: OrderQ = None,
    reason: ReasonQ = None,
    rule_id: RuleQ = None,
    account_id: AccountQ = None,
    search: KeyQ = None,
) -> HistoryFilter:
    period = queries.Period.parse(start, end, now_utc())
    scope = account_scope(key, account_id)
    rules: queries.Rules = rule_id
    if key.rule_ids is not None:  # a link limited to some rules: those (or the one asked)
        if rule_id is not None and not key.sees_rule(rule_id):
            raise NotFound(f"no rule with id {rule_id}")
        rules = rule_id if rule_id is not None else key.rule_ids
    found = HistoryFilter(period, status, order_id, reason, rules, scope)
    if search is None:
        return found
    if order_id is not None:
        raise BadQuery("give 'order_id' or 'key', not both ('key' also finds order numbers)")
    return views.by_key(svc.store, found, search)


Filter = Annotated[HistoryFilter, Depends(history_filter)]


@router.get("/api/v1/dispatches")
def list_dispatches(
    svc: Svc,
    f: Filter,
    limit: Annotated[int, Query(ge=1, le=queries.MAX_LIMIT)] = 50,
    cursor: CursorQ = None,
) -> dict[str, Any]:
    """Attempts in a period, newest first, one page at a time (follow `next_cursor`)."""
    rows, next_cursor = views.dispatch_page(svc.store, f, limit, cursor)
    page: dict[str, Any] = {"items": rows, "next_cursor": next_cursor}
    if f.key is not None:
        page["searched"] = f.searched()
    return page


@router.get(
    "/api/v1/dispatches/export.csv",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}, "description": "the filtered list as CSV"}},
)
def export_dispatches(svc: Svc, f: Filter) -> StreamingResponse:
    """The filtered list as CSV, newest first, up to 100,000 attempts."""
    name = f"dispatches-{f.period.start:%Y%m%d}-{f.period.end:%Y%m%d}.csv"
    return csv_download(
        views.dispatch_page(svc.store, f, queries.MAX_LIMIT, None),
        lambda after: views.dispatch_page(svc.store, f, queries.MAX_LIMIT, after),
        CSV_COLUMNS,
        EXPORT_ROWS,
        name,
    )


@router.get("/api/v1/dispatches/summary")
def dispatch_summary(
    key: Reader,
    svc: Svc,
    start: FromQ = None,
    end: ToQ = None,
    order_id: OrderQ = None,
    reason: ReasonQ = None,
    rule_id: RuleQ = None,
    account_id: AccountQ = None,
    search: KeyQ = None,
) -> dict[str, Any]:
    """Total attempts, failed attempts and the failure rate of a period."""
    f = history_filter(key, svc, start, end, "all", order_id, reason, rule_id, account_id, search)
    return views.summary(svc.store, f)


DimensionQ = Annotated[
    str,
    Query(
        pattern=r"^payload(\.[^.\x00-\x1f\x7f]{1,100}){1,10}$",
        max_length=300,
        description="with by=regressions: the payload path to count by, e.g. payload.carrier",
    ),
]


@router.get("/api/v1/dispatches/breakdown")
def failure_breakdown(
    key: Reader,
    svc: Svc,
    start: FromQ = None,
    end: ToQ = None,
    order_id: OrderQ = None,
    account_id: AccountQ = None,
    search: KeyQ = None,
    by: Literal["failures", "regressions"] = "failures",
    dimension: DimensionQ = "payload.carrier",
) -> dict[str, Any]:
    """The period's failed attempts by reason and by rule; or (by=regressions) its regressed
    dispatches by a payload path's value, by rule and by the status the customer held."""
    f = history_filter(key, svc, start, end, "all", order_id, None, None, account_id, search)
    if by == "regressions":
        return views.regressions(svc.store, f, dimension)
    return views.breakdown(svc.store, f)


@router.get("/api/v1/dispatches/{dispatch_id}")
def dispatch_detail(dispatch_id: str, key: Reader, svc: Svc) -> dict[str, Any]:
    """Every attempt of one dispatch, with request and response excerpts."""
    rows = [
        r
        for r in views.attempts_of(svc.store, dispatch_id)
        if visible(key, r["account_id"]) and key.sees_rule(int(r["rule_id"]))
    ]
    if not rows:
        raise NotFound(f"no attempts recorded for dispatch {dispatch_id!r}")
    return {"dispatch_id": dispatch_id, "attempts": rows}
