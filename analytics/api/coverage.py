"""Order coverage: which orders' latest state never reached a rule's endpoint, and resending it.

`GET /api/v1/orders/undelivered` (and its CSV) and `POST /api/v1/resend/latest`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse
from prometheus_client import Counter
from pydantic import BaseModel, ConfigDict, Field

from analytics import audit, event_queries, queries, schema
from analytics.api.csv_export import csv_download
from analytics.api.deps import Services, services
from analytics.api.dispatches import FromQ, Reader, RuleQ, ToQ, iso_text
from analytics.api.quotas import take_resends
from analytics.api.resend import Operator, queue_jobs
from analytics.api.scope import AccountQ, account_scope
from analytics.errors import NotFound, TooBroad
from analytics.event_queries import CoverageCursor, RuleScope
from disparo.limits import MAX_ATTEMPT
from disparo.schemas import DispatchJob, OrderEvent, RuleRef, dispatch_id_for, now_utc

router = APIRouter(tags=["coverage"])
MAX_RULES = 500  # rules in one coverage query (literal arrays in its SQL)
MAX_ORDERS = 10_000
_ORDERS_PER_QUERY = 1000
EXPORT_ROWS = 100_000
CSV_COLUMNS = (
    "order_id", "rule_id", "state", "attempts", "latest_event_type", "latest_order_status",
    "latest_at", "account_id",
)  # fmt: skip
RESENT = Counter("disparo_resend_latest_total", "Latest events of orders queued for a resend.")


def rule_scopes(svc: Services, account_id: str | None, rule_id: int | None) -> list[RuleScope]:
    """The active rules a request covers: one, or all of an account (already scoped to the
    key by `account_scope`), or of all accounts."""
    rules = [
        r
        for r in svc.rules.all()
        if r.active
        and (account_id is None or r.account_id == account_id)
        and (rule_id is None or r.id == rule_id)
    ]
    if rule_id is not None and not rules:
        raise NotFound(f"no active rule {rule_id}")
    if len(rules) > MAX_RULES:
        raise TooBroad(
            f"{len(rules)} rules in scope, at most {MAX_RULES} at once; add account_id or rule_id"
        )
    return [RuleScope(r.id, r, r.activated_at) for r in sorted(rules, key=lambda r: r.id)]


def _item(row: dict[str, Any]) -> dict[str, Any]:
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


def _page(
    svc: Services,
    period: queries.Period,
    scopes: list[RuleScope],
    account_id: str | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[dict[str, Any]], str | None]:
    if not scopes:
        return [], None
    after = CoverageCursor.decode(cursor) if cursor else None
    sql, params = event_queries.undelivered(
        svc.store.database, period, scopes, limit, after, account_id
    )
    items = [_item(r) for r in svc.store.select(sql, params)]
    if len(items) <= limit:
        return items, None
    last = items[limit - 1]
    return items[:limit], CoverageCursor(
        last["latest_at"].replace("Z", "+00:00"), last["order_id"], last["rule_id"]
    ).encode()


@dataclass(frozen=True)
class Coverage:
    """What an undelivered-orders request covers."""

    period: queries.Period
    account_id: str | None
    rules: list[RuleScope]


def coverage(
    key: Reader,
    svc: Annotated[Services, Depends(services)],
    start: FromQ = None,
    end: ToQ = None,
    rule_id: RuleQ = None,
    account_id: AccountQ = None,
) -> Coverage:
    period = queries.Period.parse(start, end, now_utc())
    scope = account_scope(key, account_id)
    return Coverage(period, scope, rule_scopes(svc, scope, rule_id))


Covered = Annotated[Coverage, Depends(coverage)]


@router.get("/api/v1/orders/undelivered")
def undelivered_orders(
    svc: Annotated[Services, Depends(services)],
    c: Covered,
    limit: Annotated[int, Query(ge=1, le=queries.MAX_LIMIT)] = 50,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> dict[str, Any]:
    """(order, rule) pairs whose latest matching event of the period was not delivered."""
    items, next_cursor = _page(svc, c.period, c.rules, c.account_id, limit, cursor)
    return {"items": items, "next_cursor": next_cursor}


@router.get(
    "/api/v1/orders/undelivered/export.csv",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}, "description": "the list as CSV"}},
)
def export_undelivered(
    svc: Annotated[Services, Depends(services)], c: Covered
) -> StreamingResponse:
    """The undelivered list as CSV, newest first, up to 100,000 pairs."""

    def page(after: str | None) -> tuple[list[dict[str, Any]], str | None]:
        return _page(svc, c.period, c.rules, c.account_id, queries.MAX_LIMIT, after)

    name = f"undelivered-{c.period.start:%Y%m%d}-{c.period.end:%Y%m%d}.csv"
    return csv_download(page(None), page, CSV_COLUMNS, EXPORT_ROWS, name)


OrderId = Annotated[str, Field(min_length=1, max_length=200)]


class LatestResend(BaseModel):
    """Order numbers whose latest event is resent to each matching rule (or to one)."""

    model_config = ConfigDict(extra="forbid")

    order_ids: list[OrderId] = Field(min_length=1, max_length=MAX_ORDERS)
    rule_id: int | None = Field(None, gt=0)
    account_id: str | None = Field(None, pattern=r"^[A-Za-z0-9._-]{1,64}$")


def latest_jobs(
    svc: Services, scopes: list[RuleScope], order_ids: list[str], account_id: str | None
) -> list[DispatchJob]:
    """One manual job per (order, rule): the order's latest event the rule matches."""
    since = now_utc() - timedelta(days=schema.RETENTION_DAYS)
    found: list[tuple[OrderEvent, int]] = []
    for i in range(0, len(order_ids), _ORDERS_PER_QUERY):
        chunk = order_ids[i : i + _ORDERS_PER_QUERY]
        sql, params = event_queries.latest_events(
            svc.store.database, scopes, chunk, since, account_id
        )
        found += [
            (OrderEvent.model_validate_json(r["event_json"]), int(r["rule_id"]))
            for r in svc.store.select(sql, params)
        ]
    ids = [dispatch_id_for(event.event_id, rule_id) for event, rule_id in found]
    last = recorded_attempts(svc, ids, since)
    jobs = []
    for (event, rule_id), dispatch_id in zip(found, ids, strict=True):
        attempt = last.get(dispatch_id, 0) + 1
        if attempt > MAX_ATTEMPT:
            continue  # as many attempts as one dispatch may have: reported as skipped
        rule = svc.rules.get(rule_id)
        if rule is None:
            continue  # deleted since the query: nothing to send to
        jobs.append(
            DispatchJob(
                dispatch_id=dispatch_id,
                attempt=attempt,
                manual=True,
                resend_id=uuid.uuid4().hex,
                event=event,
                rule=RuleRef.of(rule),
            )
        )
    return jobs


def recorded_attempts(svc: Services, dispatch_ids: list[str], since: datetime) -> dict[str, int]:
    """The highest attempt number recorded since `since`, per dispatch that has one."""
    last: dict[str, int] = {}
    for i in range(0, len(dispatch_ids), _ORDERS_PER_QUERY):
        sql, params = event_queries.last_attempts(
            svc.store.database, dispatch_ids[i : i + _ORDERS_PER_QUERY], since
        )
        last.update(
            {r["dispatch_id"]: int(r["last_attempt"]) for r in svc.store.select(sql, params)}
        )
    return last


@router.post("/api/v1/resend/latest", status_code=202)
def resend_latest(
    body: LatestResend, actor: Operator, svc: Annotated[Services, Depends(services)]
) -> dict[str, Any]:
    """Queue each order's latest event for each rule it matches; manual, audited, limited."""
    scope = account_scope(actor, body.account_id)
    scopes = rule_scopes(svc, scope, body.rule_id)
    order_ids = list(dict.fromkeys(body.order_ids))
    jobs = latest_jobs(svc, scopes, order_ids, scope) if scopes else []
    sent = {j.event.order_id for j in jobs}
    take_resends(svc, (job.event.account_id for job in jobs))
    queue_jobs(svc, jobs)
    RESENT.inc(len(jobs))
    not_found = [o for o in order_ids if o not in sent]
    request_id = str(uuid.uuid4())
    details = {
        "orders": len(order_ids),
        "rule_id": body.rule_id,
        "queued": len(jobs),
        "not_found": len(not_found),
        "request_id": request_id,
    }
    audit.record(svc.store, actor, "resend.latest", request_id, details, scope)
    return {
        "queued": len(jobs),
        "orders": len(sent),
        "not_found": not_found[:100],
        "not_found_count": len(not_found),
        "dispatch_ids": [j.dispatch_id for j in jobs][:1000],
        "request_id": request_id,
    }
