"""The receipt SLA: `GET /api/v1/sla` and `GET /api/v1/sla/breaches` (+ `/export.csv`)."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any

from fastapi import Depends, Query
from fastapi.responses import StreamingResponse

from analytics.api.csv_export import Page, csv_download
from analytics.api.deps import AccountQ, CursorQ, FromQ, Reader, RuleQ, Svc, ToQ
from analytics.api.routing import api_router
from analytics.control import receipt_sla
from analytics.control.receipt_sla import BREACH_FIELDS
from analytics.control.scope import account_scope
from analytics.errors import BadQuery
from analytics.history import queries
from analytics.history.sla_queries import SlaScope
from disparo.schemas import now_utc

router = api_router(tags=["sla"])
EXPORT_ROWS = 100_000
EventTypeQ = Annotated[str | None, Query(min_length=1, max_length=200)]


def sla_scope(
    key: Reader,
    svc: Svc,
    start: FromQ = None,
    end: ToQ = None,
    account_id: AccountQ = None,
    rule_id: RuleQ = None,
    event_type: EventTypeQ = None,
) -> SlaScope:
    period = queries.Period.parse(start, end, now_utc())
    scope = account_scope(key, account_id)
    slos = receipt_sla.slos_in_scope(svc.accounts, scope)
    return SlaScope(period, slos, scope, rule_id, event_type)


Scoped = Annotated[SlaScope, Depends(sla_scope)]


@router.get("/api/v1/sla")
def sla(svc: Svc, scope: Scoped) -> dict[str, Any]:
    """Lag percentiles per stage (producer, platform, customer, total), compliance, breaches."""
    return receipt_sla.report(svc.store, scope, now_utc())


@router.get("/api/v1/sla/breaches")
def sla_breaches(
    svc: Svc,
    scope: Scoped,
    limit: Annotated[int, Query(ge=1, le=queries.MAX_LIMIT)] = 50,
    cursor: CursorQ = None,
) -> dict[str, Any]:
    """Dispatches that arrived later than the SLO or are still owed past it, longest first."""
    items, next_cursor = _page(svc, scope, limit, _offset(cursor))
    return {"items": items, "next_cursor": next_cursor}


@router.get(
    "/api/v1/sla/breaches/export.csv",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}, "description": "the breaches as CSV"}},
)
def export_breaches(svc: Svc, scope: Scoped) -> StreamingResponse:
    """The breaches as CSV, longest lag first, up to 100,000."""
    step = queries.MAX_LIMIT
    name = f"sla-breaches-{scope.period.start:%Y%m%d}-{scope.period.end:%Y%m%d}.csv"
    return csv_download(
        _page(svc, scope, step, 0),
        lambda after: _page(svc, scope, step, _offset(after)),
        BREACH_FIELDS,
        EXPORT_ROWS,
        name,
    )


def _page(svc: Svc, scope: SlaScope, limit: int, offset: int) -> Page:
    rows = receipt_sla.breaches(svc.store, scope, now_utc(), limit + 1, offset)
    more = len(rows) > limit
    return rows[:limit], _cursor(offset + limit) if more else None


def _cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(f"sla:{offset}".encode()).decode().rstrip("=")


def _offset(cursor: str | None) -> int:
    if cursor is None:
        return 0
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        offset = int(text.removeprefix("sla:")) if text.startswith("sla:") else -1
    except (ValueError, binascii.Error):
        offset = -1
    if not 0 <= offset <= EXPORT_ROWS:
        raise BadQuery("'cursor' is not one this API gave out; start without it")
    return offset
