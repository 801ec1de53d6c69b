"""Order coverage: which orders' latest state never reached a rule's endpoint, and resending it.

`GET /api/v1/orders/undelivered` (and its CSV) and `POST /api/v1/resend/latest`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Query
from fastapi.responses import StreamingResponse

from analytics.api.csv_export import csv_download
from analytics.api.deps import (
    INLINE_WAIT_S,
    AccountQ,
    CursorQ,
    FromQ,
    IdempotencyKey,
    Operator,
    Reader,
    RuleQ,
    Svc,
    ToQ,
)
from analytics.api.routing import api_router
from analytics.control import resends
from analytics.control.coverage import rule_scopes
from analytics.control.resends import LatestResend
from analytics.control.scope import account_scope
from analytics.control.tasks import answer
from analytics.history import queries, views
from analytics.history.event_queries import RuleScope
from analytics.history.views import Page
from disparo.schemas import now_utc

router = api_router(tags=["coverage"])
EXPORT_ROWS = 100_000
CSV_COLUMNS = (
    "order_id", "rule_id", "state", "attempts", "latest_event_type", "latest_order_status",
    "latest_at", "account_id",
)  # fmt: skip


@dataclass(frozen=True)
class Coverage:
    """What an undelivered-orders request covers."""

    period: queries.Period
    account_id: str | None
    rules: list[RuleScope]


def coverage(
    key: Reader,
    svc: Svc,
    start: FromQ = None,
    end: ToQ = None,
    rule_id: RuleQ = None,
    account_id: AccountQ = None,
) -> Coverage:
    period = queries.Period.parse(start, end, now_utc())
    scope = account_scope(key, account_id)
    return Coverage(period, scope, rule_scopes(svc.rules, scope, rule_id))


Covered = Annotated[Coverage, Depends(coverage)]


@router.get("/api/v1/orders/undelivered")
def undelivered_orders(
    svc: Svc,
    c: Covered,
    limit: Annotated[int, Query(ge=1, le=queries.MAX_LIMIT)] = 50,
    cursor: CursorQ = None,
) -> dict[str, Any]:
    """(order, rule) pairs whose latest matching event of the period was not delivered."""
    items, next_cursor = views.undelivered_page(
        svc.store, c.period, c.rules, c.account_id, limit, cursor
    )
    return {"items": items, "next_cursor": next_cursor}


@router.get(
    "/api/v1/orders/undelivered/export.csv",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}, "description": "the list as CSV"}},
)
def export_undelivered(svc: Svc, c: Covered) -> StreamingResponse:
    """The undelivered list as CSV, newest first, up to 100,000 pairs.

    Its query is run once (it is the costly one: every matching event of the period
    against every attempt); the rows it returns are then streamed.
    """
    rows, _ = views.undelivered_page(svc.store, c.period, c.rules, c.account_id, EXPORT_ROWS, None)
    name = f"undelivered-{c.period.start:%Y%m%d}-{c.period.end:%Y%m%d}.csv"
    return csv_download((rows, None), _no_more, CSV_COLUMNS, EXPORT_ROWS, name)


def _no_more(_: str) -> Page:
    return [], None


@router.post("/api/v1/resend/latest", status_code=202)
def resend_latest(
    body: LatestResend, actor: Operator, svc: Svc, key: IdempotencyKey = None
) -> dict[str, Any]:
    """Queue each order's latest event for each rule it matches; manual, audited, limited."""
    return svc.idempotency.once(
        actor.account_id or "",
        key,
        ("resend.latest", body.model_dump()),
        lambda: answer(resends.resend_latest(svc, body, actor), INLINE_WAIT_S),
    )
