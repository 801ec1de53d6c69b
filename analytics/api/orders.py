"""An order's story: `GET /api/v1/orders/{order_id}` (its events, every rule's outcome, why)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Path

from analytics.api.deps import AccountQ, Admin, FromQ, Reader, Svc, ToQ
from analytics.api.routing import api_router
from analytics.control.expunge import expunge_order
from analytics.control.order_story import story
from analytics.control.scope import account_scope
from analytics.history import queries, schema
from disparo.schemas import now_utc

router = api_router(tags=["orders"])
OrderPath = Annotated[str, Path(min_length=1, max_length=200, description="the order number")]


@router.get("/api/v1/orders/{order_id}")
def order_story(
    order_id: OrderPath,
    key: Reader,
    svc: Svc,
    start: FromQ = None,
    end: ToQ = None,
    account_id: AccountQ = None,
) -> dict[str, Any]:
    """The order's events (default: the 30 days kept), what every rule of its account made
    of each and why, and its dispatches with their attempts; rules judged as they are now."""
    now = now_utc()
    period = queries.Period.parse(start, end, now, default_days=schema.RETENTION_DAYS)
    scope = account_scope(key, account_id)
    rules = [r for r in svc.rules.all() if key.sees_rule(r.id)]
    told = story(svc.store, rules, order_id, scope, period, now)
    if key.rule_ids is not None:  # a link limited to some rules sees their dispatches only
        told["dispatches"] = [d for d in told["dispatches"] if key.sees_rule(d["rule_id"])]
    return told


@router.post("/api/v1/orders/{order_id}/expunge")
def expunge(
    order_id: OrderPath, actor: Admin, svc: Svc, account_id: AccountQ = None
) -> dict[str, Any]:
    """Erase the order's personal data: its payloads, request bodies and answers, kept ids,
    statuses, times and codes (the key's account; a platform key: `account_id` or all)."""
    return expunge_order(svc, order_id, actor, account_id)
