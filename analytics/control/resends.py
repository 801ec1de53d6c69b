"""Manual resends: of a dispatch, of an order, of a period's final failures (bulk), of
orders' latest events, and a rule's backfill. Each is bounded, limited and audited."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta
from typing import Annotated, Any

from prometheus_client import Counter
from pydantic import BaseModel, ConfigDict, Field, model_validator

from analytics.control import audit
from analytics.control.access import ApiKey
from analytics.control.coverage import rule_scopes
from analytics.control.job_queue import backfill_job, latest_job, resend_job
from analytics.control.quotas import take_resends
from analytics.control.scope import account_scope
from analytics.control.services import Services
from analytics.errors import NotFound, TooBroad
from analytics.history import event_queries, queries, schema
from analytics.history.event_queries import RuleScope
from analytics.history.views import CHUNK, iso_text, recorded_attempts
from disparo.limits import MAX_ATTEMPT
from disparo.schemas import DispatchJob, OrderEvent, dispatch_id_for, now_utc

RESENDS = Counter(
    "disparo_resends_total", "Dispatches queued for a manual resend, by request kind.", ["kind"]
)
RESENT_LATEST = Counter(
    "disparo_resend_latest_total", "Latest events of orders queued for a resend."
)
MAX_PER_ORDER = 1000
MAX_BULK = 10000
MAX_ORDERS = 10_000
MAX_BACKFILL = 100_000
AccountText = Field(None, pattern=r"^[A-Za-z0-9._-]{1,64}$")


class ResendRequest(BaseModel):
    """Either one `dispatch_id`, or an `order_id` with an optional event type and rule."""

    model_config = ConfigDict(extra="forbid")

    dispatch_id: str | None = Field(None, max_length=200)
    order_id: str | None = Field(None, max_length=200)
    event_type: str | None = Field(None, max_length=200)
    rule_id: int | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _one_target(self) -> ResendRequest:
        if (self.dispatch_id is None) == (self.order_id is None):
            raise ValueError(
                "give either 'dispatch_id', or 'order_id' (with optional "
                "'event_type' and 'rule_id')"
            )
        if self.dispatch_id is not None and (self.event_type or self.rule_id):
            raise ValueError("'event_type' and 'rule_id' narrow an 'order_id' resend only")
        return self


class BulkResendRequest(BaseModel):
    """Every final-failed dispatch of a period, narrowed by any of the filters."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    start: datetime | None = Field(None, alias="from")
    end: datetime | None = Field(None, alias="to")
    rule_id: int | None = Field(None, gt=0)
    event_type: str | None = Field(None, max_length=200)
    reason: str | None = Field(None, max_length=50)
    order_id: str | None = Field(None, max_length=200)
    account_id: str | None = AccountText


OrderId = Annotated[str, Field(min_length=1, max_length=200)]


class LatestResend(BaseModel):
    """Order numbers whose latest event is resent to each matching rule (or to one)."""

    model_config = ConfigDict(extra="forbid")

    order_ids: list[OrderId] = Field(min_length=1, max_length=MAX_ORDERS)
    rule_id: int | None = Field(None, gt=0)
    account_id: str | None = AccountText


class Period(BaseModel):
    """A period of stored events (default: the 30 days kept)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    start: datetime | None = Field(None, alias="from")
    end: datetime | None = Field(None, alias="to")


def events_period(start: datetime | None, end: datetime | None) -> queries.Period:
    """A period of the events table: by default all it keeps."""
    return queries.Period.parse(start, end, now_utc(), default_days=schema.RETENTION_DAYS)


def _queue_rows(
    svc: Services, rows: list[dict[str, Any]], limit: int, advice: str
) -> list[DispatchJob]:
    """Turn stored dispatches into resend jobs and queue them, refusing more than `limit`."""
    if len(rows) > limit:
        raise TooBroad(f"more than {limit} dispatches match; {advice}")
    jobs = [resend_job(row, svc.rules.get(int(row["rule"]))) for row in rows]
    take_resends(svc, (job.event.account_id for job in jobs))
    svc.jobs.queue(jobs)
    return jobs


def resend(svc: Services, body: ResendRequest, actor: ApiKey) -> dict[str, Any]:
    """Queue a new attempt of one dispatch, or of every dispatch of an order."""
    since = now_utc() - timedelta(days=schema.RETENTION_DAYS)
    sql, params = queries.resend_candidates(
        svc.store.database,
        since,
        body.dispatch_id,
        body.order_id,
        body.event_type,
        body.rule_id,
        MAX_PER_ORDER,
        account_id=actor.account_id,  # an account key resends its own dispatches only
    )
    rows = svc.store.select(sql, params)
    if not rows:
        what = body.dispatch_id or f"order {body.order_id!r}"
        raise NotFound(f"no dispatch found for {what} in the last {schema.RETENTION_DAYS} days")
    jobs = _queue_rows(
        svc,
        rows,
        MAX_PER_ORDER,
        "narrow it with 'event_type' or 'rule_id', or use /api/v1/resend/bulk",
    )
    RESENDS.labels("dispatch" if body.dispatch_id else "order").inc(len(jobs))
    target = body.dispatch_id or f"order:{body.order_id}"
    request = body.model_dump(exclude_none=True)
    details = {"request": request, "queued": len(jobs)}
    audit.record(svc.store, actor, "resend", target, details, jobs[0].event.account_id)
    return {"queued": len(jobs), "dispatch_ids": [j.dispatch_id for j in jobs]}


def resend_bulk(svc: Services, body: BulkResendRequest, actor: ApiKey) -> dict[str, Any]:
    """Queue a new attempt of every final-failed dispatch matching the filter; recorded."""
    period = queries.Period.parse(body.start, body.end, now_utc())
    sql, params = queries.final_failures(
        svc.store.database,
        period,
        body.rule_id,
        body.event_type,
        body.reason,
        body.order_id,
        MAX_BULK,
        account_id=account_scope(actor, body.account_id),
    )
    rows = svc.store.select(sql, params)
    jobs = _queue_rows(
        svc, rows, MAX_BULK, "narrow the period or add rule_id, event_type, reason or order_id"
    )
    RESENDS.labels("bulk").inc(len(jobs))
    request_id = str(uuid.uuid4())
    request = body.model_dump(mode="json", by_alias=True, exclude_none=True)
    row = {
        "requested_at": now_utc(),
        "request_id": request_id,
        "requested_by": actor.name,
        "filter": json.dumps(request),
        "queued": len(jobs),
    }
    svc.store.insert(schema.RESENDS_TABLE, [row], dedup_token=request_id)
    details = {"request": request, "queued": len(jobs), "request_id": request_id}
    audit.record(svc.store, actor, "resend.bulk", request_id, details, body.account_id)
    return {"queued": len(jobs), "request_id": request_id}


def latest_jobs(
    svc: Services, scopes: list[RuleScope], order_ids: list[str], account_id: str | None
) -> list[DispatchJob]:
    """One manual job per (order, rule): the order's latest event the rule matches."""
    since = now_utc() - timedelta(days=schema.RETENTION_DAYS)
    found: list[tuple[OrderEvent, int]] = []
    for i in range(0, len(order_ids), CHUNK):
        sql, params = event_queries.latest_events(
            svc.store.database, scopes, order_ids[i : i + CHUNK], since, account_id
        )
        found += [
            (OrderEvent.model_validate_json(r["event_json"]), int(r["rule_id"]))
            for r in svc.store.select(sql, params)
        ]
    ids = [dispatch_id_for(event.event_id, rule_id) for event, rule_id in found]
    last = recorded_attempts(svc.store, ids, since)
    jobs = []
    for (event, rule_id), dispatch_id in zip(found, ids, strict=True):
        attempt = last.get(dispatch_id, 0) + 1
        rule = svc.rules.get(rule_id)
        if attempt > MAX_ATTEMPT or rule is None:
            continue  # as many attempts as one dispatch may have, or deleted: skipped
        jobs.append(latest_job(event, rule, attempt))
    return jobs


def resend_latest(svc: Services, body: LatestResend, actor: ApiKey) -> dict[str, Any]:
    """Queue each order's latest event for each rule it matches; manual, audited, limited."""
    scope = account_scope(actor, body.account_id)
    scopes = rule_scopes(svc.rules, scope, body.rule_id)
    order_ids = list(dict.fromkeys(body.order_ids))
    jobs = latest_jobs(svc, scopes, order_ids, scope) if scopes else []
    sent = {j.event.order_id for j in jobs}
    take_resends(svc, (job.event.account_id for job in jobs))
    svc.jobs.queue(jobs)
    RESENT_LATEST.inc(len(jobs))
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


def backfill(svc: Services, rule_id: int, body: Period, actor: ApiKey) -> dict[str, Any]:
    """Dispatch the stored events of a period the rule matches and was not sent yet."""
    rule = svc.rule_book.found(rule_id, actor)
    period = events_period(body.start, body.end)
    sql, params = event_queries.matched_events(svc.store.database, period, rule, MAX_BACKFILL)
    events = [
        OrderEvent.model_validate_json(r["event_json"]) for r in svc.store.select(sql, params)
    ]
    if len(events) > MAX_BACKFILL:
        raise TooBroad(f"more than {MAX_BACKFILL} events match; backfill a shorter period")
    jobs = [backfill_job(e, rule) for e in events]
    since = period.start - timedelta(hours=1)  # the worker's clock is not Kafka's
    sent = recorded_attempts(svc.store, [j.dispatch_id for j in jobs], since)
    new = [j for j in jobs if j.dispatch_id not in sent]
    # First attempts like the dispatcher's: retries, order lanes and pauses apply to them.
    svc.jobs.dispatch(new)
    details = {
        "from": iso_text(period.start),
        "to": iso_text(period.end),
        "matched": len(jobs),
        "queued": len(new),
    }
    audit.record(svc.store, actor, "rule.backfill", str(rule_id), details, rule.account_id)
    return {"matched_events": len(jobs), "queued": len(new), "already_dispatched": len(sent)}
