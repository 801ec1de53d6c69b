"""Manual resends: `POST /api/v1/resend` (one dispatch or an order) and `/resend/bulk`."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from prometheus_client import Counter
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from analytics import audit, queries, schema
from analytics.acked import send_acked
from analytics.api.deps import Services, services
from analytics.api.quotas import take_resends
from analytics.api.scope import account_scope
from analytics.errors import Conflict, NotFound, TooBroad
from disparo.access import ApiKey, Permission
from disparo.api_access import allow
from disparo.limits import MAX_ATTEMPT
from disparo.schemas import NOTIFICATIONS_RULE_ID, DispatchJob, OrderEvent, RuleRef, now_utc

router = APIRouter(tags=["resend"])
Operator = Annotated[ApiKey, Depends(allow(Permission.RESEND))]
RESENDS = Counter(
    "disparo_resends_total", "Dispatches queued for a manual resend, by request kind.", ["kind"]
)
MAX_PER_ORDER = 1000
MAX_BULK = 10000


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
    account_id: str | None = Field(None, pattern=r"^[A-Za-z0-9._-]{1,64}$")


def _jobs(svc: Services, rows: list[dict[str, Any]]) -> list[DispatchJob]:
    jobs = []
    for row in rows:
        ref = _rule_of(svc, row)
        if ref is None:
            raise Conflict(
                f"rule {row['rule']} of dispatch {row['dispatch_id']} "
                "no longer exists; recreate it or leave this dispatch out"
            )
        if not row["last_event"]:
            raise Conflict(
                f"dispatch {row['dispatch_id']} was stored before events "
                "were kept for resends; publish the event again instead"
            )
        if int(row["last_attempt"]) >= MAX_ATTEMPT:
            raise Conflict(
                f"dispatch {row['dispatch_id']} already had {MAX_ATTEMPT} attempts, the most "
                "one dispatch may have; fix the endpoint and send the order's event again"
            )
        try:
            event = OrderEvent.model_validate_json(row["last_event"])
        except ValidationError as exc:
            raise Conflict(
                f"stored event of {row['dispatch_id']} is unreadable: {exc.errors()[0]['msg']}"
            ) from None
        jobs.append(
            DispatchJob(
                dispatch_id=row["dispatch_id"],
                attempt=int(row["last_attempt"]) + 1,
                manual=True,
                resend_id=uuid.uuid4().hex,
                event=event,
                rule=ref,
            )
        )
    return jobs


def _rule_of(svc: Services, row: dict[str, Any]) -> RuleRef | None:
    """The rule a stored dispatch is resent to: as it is now (rule 0: the account's
    notification endpoint, looked up by the worker); None when it was deleted."""
    rule_id = int(row["rule"])
    if rule_id == NOTIFICATIONS_RULE_ID:
        return RuleRef(rule_id=rule_id)
    rule = svc.rules.get(rule_id)
    return None if rule is None else RuleRef.of(rule)


def queue_jobs(svc: Services, jobs: list[DispatchJob], topic: str | None = None) -> None:
    """Send jobs (to the resend topic unless told) and wait until Kafka has them all."""
    records = [(j.event.order_id.encode(), j.model_dump_json().encode()) for j in jobs]
    send_acked(svc.producer, topic or svc.topics.resend, records, "jobs not queued")


def _queue_rows(
    svc: Services, rows: list[dict[str, Any]], limit: int, advice: str
) -> list[DispatchJob]:
    """Turn stored dispatches into resend jobs and queue them, refusing more than `limit`."""
    if len(rows) > limit:
        raise TooBroad(f"more than {limit} dispatches match; {advice}")
    jobs = _jobs(svc, rows)
    take_resends(svc, (job.event.account_id for job in jobs))
    queue_jobs(svc, jobs)
    return jobs


@router.post("/api/v1/resend", status_code=202)
def resend(
    body: ResendRequest, actor: Operator, svc: Annotated[Services, Depends(services)]
) -> dict[str, Any]:
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


@router.post("/api/v1/resend/bulk", status_code=202)
def resend_bulk(
    body: BulkResendRequest, actor: Operator, svc: Annotated[Services, Depends(services)]
) -> dict[str, Any]:
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
    svc.store.insert(
        schema.RESENDS_TABLE,
        [
            {
                "requested_at": now_utc(),
                "request_id": request_id,
                "requested_by": actor.name,
                "filter": json.dumps(
                    body.model_dump(mode="json", by_alias=True, exclude_none=True)
                ),
                "queued": len(jobs),
            }
        ],
        dedup_token=request_id,
    )
    request = body.model_dump(mode="json", by_alias=True, exclude_none=True)
    details = {"request": request, "queued": len(jobs), "request_id": request_id}
    audit.record(svc.store, actor, "resend.bulk", request_id, details, body.account_id)
    return {"queued": len(jobs), "request_id": request_id}
