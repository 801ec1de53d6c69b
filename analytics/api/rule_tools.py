"""Trying a rule: `/rules/dry-run` (before saving), `/rules/{id}/backfill`, `/rules/{id}/test`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends
from pydantic import BaseModel, ConfigDict, Field

from analytics import audit, event_queries, queries, schema
from analytics.api.coverage import recorded_attempts
from analytics.api.deps import Services, services
from analytics.api.dispatches import Reader, iso_text
from analytics.api.resend import Operator, queue_jobs
from analytics.api.rules import Filters, found_rule
from analytics.api.scope import account_scope
from analytics.errors import InvalidField, KafkaRefused, NoAnswer, TooBroad
from analytics.test_webhook import OutcomeWatch, sample_event, webhook_test_job
from disparo.schemas import AccountId, DispatchJob, OrderEvent, now_utc

router = APIRouter(tags=["rules"])
MAX_BACKFILL = 100_000
# A worker takes a resend within moments; beyond the rule's own timeout, this much more.
TEST_GRACE_S = 20.0


class DryRun(BaseModel):
    """What a rule matches (the rest of a rule body is accepted and ignored), over a period."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    event_types: list[Annotated[str, Field(min_length=1, max_length=200)]] = Field(
        min_length=1, max_length=100
    )
    filters: Filters = Field(default_factory=dict)
    account_id: AccountId | None = None
    start: datetime | None = Field(None, alias="from")
    end: datetime | None = Field(None, alias="to")


class Period(BaseModel):
    """A period of stored events (default: the 30 days kept)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    start: datetime | None = Field(None, alias="from")
    end: datetime | None = Field(None, alias="to")


def _events_period(start: datetime | None, end: datetime | None) -> queries.Period:
    return queries.Period.parse(start, end, now_utc(), default_days=schema.RETENTION_DAYS)


@router.post("/api/v1/rules/dry-run")
def dry_run(
    body: DryRun, key: Reader, svc: Annotated[Services, Depends(services)]
) -> dict[str, Any]:
    """Events and orders of a period a rule (not saved) would match, with a sample of 20."""
    period = _events_period(body.start, body.end)
    account_id = account_scope(key, body.account_id) or "default"
    matcher = _Matcher(account_id, body.event_types, body.filters)
    [row] = svc.store.select(*event_queries.dry_run(svc.store.database, period, matcher))
    sample = [
        {
            "event_id": item[0],
            "order_id": item[1],
            "event_type": item[2],
            "order_status": item[3] or None,
            "published_at": iso_text(item[4]),
        }
        for item in row["sample"]
    ]
    return {
        "matched_events": int(row["matched_events"]),
        "matched_orders": int(row["matched_orders"]),
        "sample": sample,
        "from": iso_text(period.start),
        "to": iso_text(period.end),
    }


@dataclass(frozen=True)
class _Matcher:
    """What a dry run matches with: the body's types and filters, in one account."""

    account_id: str
    event_types: list[str]
    filters: dict[str, list[str]]


@router.post("/api/v1/rules/{rule_id}/backfill", status_code=202)
def backfill(
    rule_id: int,
    actor: Operator,
    svc: Annotated[Services, Depends(services)],
    body: Annotated[Period, Body()] = Period(),  # noqa: B008 (an immutable default)
) -> dict[str, Any]:
    """Dispatch the stored events of a period the rule matches and was not sent yet."""
    rule = found_rule(svc, rule_id, actor)
    period = _events_period(body.start, body.end)
    sql, params = event_queries.matched_events(svc.store.database, period, rule, MAX_BACKFILL)
    events = [
        OrderEvent.model_validate_json(r["event_json"]) for r in svc.store.select(sql, params)
    ]
    if len(events) > MAX_BACKFILL:
        raise TooBroad(f"more than {MAX_BACKFILL} events match; backfill a shorter period")
    jobs = [DispatchJob.first(e, rule) for e in events]
    since = period.start - timedelta(hours=1)  # the worker's clock is not Kafka's
    sent = recorded_attempts(svc, [j.dispatch_id for j in jobs], since)
    new = [j for j in jobs if j.dispatch_id not in sent]
    # First attempts like the dispatcher's: retries, order lanes and pauses apply to them.
    queue_jobs(svc, new, svc.topics.dispatch_jobs)
    details = {
        "from": iso_text(period.start),
        "to": iso_text(period.end),
        "matched": len(jobs),
        "queued": len(new),
    }
    audit.record(svc.store, actor, "rule.backfill", str(rule_id), details, rule.account_id)
    return {"matched_events": len(jobs), "queued": len(new), "already_dispatched": len(sent)}


@router.post("/api/v1/rules/{rule_id}/test")
def send_test(
    rule_id: int,
    actor: Operator,
    svc: Annotated[Services, Depends(services)],
    event: Annotated[OrderEvent | None, Body()] = None,
) -> dict[str, Any]:
    """Send one signed webhook now and answer with its result (recorded as disparo.test)."""
    rule = found_rule(svc, rule_id, actor)
    if event is not None and event.account_id != rule.account_id:
        raise InvalidField(
            "account_id", f"the event must be of the rule's account {rule.account_id!r}"
        )
    job = webhook_test_job(rule, event or sample_event(rule))
    if svc.kafka is None:
        raise KafkaRefused("this API has no Kafka settings to read outcomes with")
    watch = OutcomeWatch(svc.kafka, svc.topics.outcomes)
    try:
        queue_jobs(svc, [job])
        outcome = watch.wait_for(job, rule.timeout_s + TEST_GRACE_S)
    finally:
        watch.close()
    details = {"dispatch_id": job.dispatch_id, "status": outcome.status if outcome else "no_answer"}
    audit.record(svc.store, actor, "rule.test", str(rule_id), details, rule.account_id)
    if outcome is None:
        raise NoAnswer(
            f"the test webhook was queued ({job.dispatch_id}) but no worker reported its "
            f"attempt within {rule.timeout_s + TEST_GRACE_S:.0f} s; are the workers running? "
            "It will appear in the history once one does"
        )
    return {
        "status": outcome.status,
        "http_status": outcome.http_status,
        "reason": outcome.reason,
        "error": outcome.error,
        "duration_ms": outcome.duration_ms,
        "response_excerpt": outcome.response_excerpt[:2000],
        "dispatch_id": outcome.dispatch_id,
        "attempt_id": outcome.attempt_id,
        "event_type": outcome.event_type,
        "url": outcome.url,
    }
