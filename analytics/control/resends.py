"""Manual resends: of a dispatch, of an order, of a period's final failures (bulk), of
orders' latest events, and a rule's backfill. Each is bounded, limited and audited."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Annotated, Any

from prometheus_client import Counter
from pydantic import BaseModel, ConfigDict, Field, model_validator

from analytics.control import audit
from analytics.control.coverage import rule_scopes
from analytics.control.expunge import readable
from analytics.control.job_queue import backfill_job, latest_job, resend_job
from analytics.control.quotas import queue_paced, take_resends
from analytics.control.scope import account_scope
from analytics.control.services import Services
from analytics.control.tasks import Task
from analytics.errors import NotFound, TooBroad
from analytics.history import event_queries, queries, schema
from analytics.history.event_queries import RuleScope
from analytics.history.views import iso_text, recorded_attempts
from disparo.access import ApiKey
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
# Stored events (or dispatches) read, built and queued at a time by a bulk task: memory
# holds one chunk of events, plus the ids of the whole request (at most MAX_BACKFILL).
CHUNK = 500
AccountText = Field(None, pattern=r"^[A-Za-z0-9._-]{1,64}$")


class ResendRequest(BaseModel):
    """Either one `dispatch_id`, or an `order_id` with an optional event type and rule."""

    model_config = ConfigDict(hide_input_in_errors=True, extra="forbid")

    dispatch_id: str | None = Field(None, max_length=200)
    order_id: str | None = Field(None, max_length=200)
    event_type: str | None = Field(None, max_length=200)
    rule_id: int | None = Field(None, gt=0, lt=2**53)  # as rule ids are made

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

    model_config = ConfigDict(hide_input_in_errors=True, extra="forbid", populate_by_name=True)

    start: datetime | None = Field(None, alias="from")
    end: datetime | None = Field(None, alias="to")
    rule_id: int | None = Field(None, gt=0, lt=2**53)  # as rule ids are made
    event_type: str | None = Field(None, max_length=200)
    reason: str | None = Field(None, max_length=50)
    order_id: str | None = Field(None, max_length=200)
    account_id: str | None = AccountText


OrderId = Annotated[str, Field(min_length=1, max_length=200)]


class LatestResend(BaseModel):
    """Order numbers whose latest event is resent to each matching rule (or to one)."""

    model_config = ConfigDict(hide_input_in_errors=True, extra="forbid")

    order_ids: list[OrderId] = Field(min_length=1, max_length=MAX_ORDERS)
    rule_id: int | None = Field(None, gt=0, lt=2**53)  # as rule ids are made
    account_id: str | None = AccountText


class Period(BaseModel):
    """A period of stored events (default: the 30 days kept)."""

    model_config = ConfigDict(hide_input_in_errors=True, extra="forbid", populate_by_name=True)

    start: datetime | None = Field(None, alias="from")
    end: datetime | None = Field(None, alias="to")


def events_period(start: datetime | None, end: datetime | None) -> queries.Period:
    """A period of the events table: by default all it keeps."""
    return queries.Period.parse(start, end, now_utc(), default_days=schema.RETENTION_DAYS)


def resend(svc: Services, body: ResendRequest, actor: ApiKey) -> dict[str, Any]:
    """Queue a new attempt of one dispatch, or of every dispatch of an order (at most
    1,000: bounded, so done inline)."""
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
    rows = [r for r in svc.store.select(sql, params) if actor.sees_rule(int(r["rule"]))]
    if not rows:
        what = body.dispatch_id or f"order {body.order_id!r}"
        raise NotFound(f"no dispatch found for {what} in the last {schema.RETENTION_DAYS} days")
    if len(rows) > MAX_PER_ORDER:
        raise TooBroad(
            f"more than {MAX_PER_ORDER} dispatches match; narrow it with 'event_type' or "
            "'rule_id', or use /api/v1/resend/bulk"
        )
    jobs = [resend_job(row, svc.rules.get(int(row["rule"]))) for row in rows]
    take_resends(svc, (job.event.account_id for job in jobs))
    svc.jobs.queue(jobs)
    RESENDS.labels("dispatch" if body.dispatch_id else "order").inc(len(jobs))
    target = body.dispatch_id or f"order:{body.order_id}"
    request = body.model_dump(exclude_none=True)
    details = {"request": request, "queued": len(jobs)}
    audit.record(svc.store, actor, "resend", target, details, jobs[0].event.account_id)
    return {"queued": len(jobs), "dispatch_ids": [j.dispatch_id for j in jobs]}


def resend_bulk(svc: Services, body: BulkResendRequest, actor: ApiKey) -> Task:
    """Start queueing a new attempt of every final-failed dispatch matching the filter."""
    period = queries.Period.parse(body.start, body.end, now_utc())
    account_id = account_scope(actor, body.account_id)
    sql, params = queries.final_failures(
        svc.store.database,
        period,
        body.rule_id,
        body.event_type,
        body.reason,
        body.order_id,
        MAX_BULK,
        account_id=account_id,
        columns=queries.RESEND_ID_COLUMNS,
    )
    found = svc.store.select(sql, params)  # ids only: MAX_BULK of them at most
    if len(found) > MAX_BULK:
        raise TooBroad(
            f"more than {MAX_BULK} dispatches match; narrow the period or add rule_id, "
            "event_type, reason or order_id"
        )
    request = body.model_dump(mode="json", by_alias=True, exclude_none=True)

    def work(task: Task) -> dict[str, Any]:
        task.count(matched=len(found))
        for start in range(0, len(found), CHUNK):
            rows = found[start : start + CHUNK]
            ids = [str(r["dispatch_id"]) for r in rows]
            sql, params = event_queries.last_attempts(
                svc.store.database, ids, period.start, with_event=True
            )
            events = {str(r["dispatch_id"]): r["last_event"] for r in svc.store.select(sql, params)}
            jobs = [
                resend_job({**r, "last_event": events.get(str(r["dispatch_id"]), "")}, rule)
                for r in rows
                for rule in [svc.rules.get(int(r["rule"]))]
            ]
            queue_paced(svc, task, jobs)
            RESENDS.labels("bulk").inc(len(jobs))
        request_id = task.id
        row = {
            "requested_at": now_utc(),
            "request_id": request_id,
            "requested_by": actor.name,
            "filter": json.dumps(request),
            "queued": task.progress.get("queued", 0),
        }
        svc.store.insert(schema.RESENDS_TABLE, [row], dedup_token=request_id)
        details = {"request": request, "queued": row["queued"], "request_id": request_id}
        audit.record(svc.store, actor, "resend.bulk", request_id, details, body.account_id)
        return {"queued": row["queued"], "request_id": request_id}

    return svc.tasks.start("resend.bulk", account_id, work)


def latest_jobs(
    svc: Services, scopes: list[RuleScope], order_ids: list[str], account_id: str | None
) -> list[DispatchJob]:
    """One manual job per (order, rule) of these orders (one chunk): the order's latest event
    the rule matches."""
    since = now_utc() - timedelta(days=schema.RETENTION_DAYS)
    sql, params = event_queries.latest_events(
        svc.store.database, scopes, order_ids, since, account_id
    )
    found = [
        (OrderEvent.model_validate_json(r["event_json"]), int(r["rule_id"]))
        for r in svc.store.select(sql, params)
        if readable(r["event_json"])  # an expunged order's event is gone: not resent
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


def resend_latest(svc: Services, body: LatestResend, actor: ApiKey) -> Task:
    """Start queueing each order's latest event for each rule it matches, a chunk of
    orders at a time; manual, audited, within the account's resend limit."""
    scope = account_scope(actor, body.account_id)
    scopes = rule_scopes(svc.rules, scope, body.rule_id)
    order_ids = list(dict.fromkeys(body.order_ids))

    def work(task: Task) -> dict[str, Any]:
        sent: set[str] = set()
        dispatch_ids: list[str] = []
        for start in range(0, len(order_ids) if scopes else 0, CHUNK):
            jobs = latest_jobs(svc, scopes, order_ids[start : start + CHUNK], scope)
            queue_paced(svc, task, jobs)
            RESENT_LATEST.inc(len(jobs))
            sent |= {j.event.order_id for j in jobs}
            dispatch_ids += [j.dispatch_id for j in jobs][: 1000 - len(dispatch_ids)]
            task.count(orders=min(CHUNK, len(order_ids) - start))
        not_found = [o for o in order_ids if o not in sent]
        queued = task.progress.get("queued", 0)
        details = {
            "orders": len(order_ids),
            "rule_id": body.rule_id,
            "queued": queued,
            "not_found": len(not_found),
            "request_id": task.id,
        }
        audit.record(svc.store, actor, "resend.latest", task.id, details, scope)
        return {
            "queued": queued,
            "orders": len(sent),
            "not_found": not_found[:100],
            "not_found_count": len(not_found),
            "dispatch_ids": dispatch_ids,
            "request_id": task.id,
        }

    return svc.tasks.start("resend.latest", scope, work)


def backfill(svc: Services, rule_id: int, body: Period, actor: ApiKey) -> Task:
    """Start dispatching the stored events of a period the rule matches and were not sent
    to it yet, a chunk at a time, within the account's resend limit."""
    rule = svc.rule_book.found(rule_id, actor)
    period = events_period(body.start, body.end)
    sql, params = event_queries.matched_event_ids(svc.store.database, period, rule, MAX_BACKFILL)
    ids = [(str(r["order_id"]), str(r["event_id"])) for r in svc.store.select(sql, params)]
    if len(ids) > MAX_BACKFILL:
        raise TooBroad(f"more than {MAX_BACKFILL} events match; backfill a shorter period")
    since = period.start - timedelta(hours=1)  # the worker's clock is not Kafka's

    def work(task: Task) -> dict[str, Any]:
        task.count(matched=len(ids))
        for start in range(0, len(ids), CHUNK):
            chunk = ids[start : start + CHUNK]
            sql, params = event_queries.events_by_id(
                svc.store.database, rule.account_id, chunk, period
            )
            stored = {
                r["event_id"]: r["event_json"]
                for r in svc.store.select(sql, params)
                if readable(r["event_json"])  # an expunged order's event is gone
            }
            jobs = [
                backfill_job(OrderEvent.model_validate_json(stored[event_id]), rule)
                for _, event_id in chunk
                if event_id in stored
            ]
            sent = recorded_attempts(svc.store, [j.dispatch_id for j in jobs], since)
            task.count(already_dispatched=len(sent))
            # First attempts like the dispatcher's: retries, order lanes and pauses apply.
            fresh = [j for j in jobs if j.dispatch_id not in sent]
            queue_paced(svc, task, fresh, svc.topics.dispatch_jobs)
        queued = task.progress.get("queued", 0)
        details = {
            "from": iso_text(period.start),
            "to": iso_text(period.end),
            "matched": len(ids),
            "queued": queued,
        }
        audit.record(svc.store, actor, "rule.backfill", str(rule_id), details, rule.account_id)
        return {
            "matched_events": len(ids),
            "queued": queued,
            "already_dispatched": task.progress.get("already_dispatched", 0),
        }

    return svc.tasks.start("rule.backfill", rule.account_id, work)
