"""Trying a rule: what a rule (not saved) would match, and one test webhook sent now."""

from __future__ import annotations

import asyncio
import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from analytics.control import audit
from analytics.control.job_queue import webhook_test_job
from analytics.control.resends import events_period
from analytics.control.sample_event import sample_event
from analytics.control.scope import account_scope
from analytics.control.services import Services
from analytics.errors import Forbidden, InvalidField, KafkaRefused, NoAnswer
from analytics.history import views
from disparo.access import ApiKey, Permission, allows, roles_for
from disparo.filters import FilterSpec
from disparo.matching import ALL_EVENT_TYPES, filter_mismatch
from disparo.schemas import AccountId, Filters, OrderEvent, Rule

# A worker takes a resend within moments; beyond the rule's own timeout, this much more.
TEST_GRACE_S = 20.0


class DryRun(BaseModel):
    """What a rule matches (the rest of a rule body is accepted and ignored), over a period."""

    model_config = ConfigDict(hide_input_in_errors=True, extra="ignore", populate_by_name=True)

    event_types: list[Annotated[str, Field(min_length=1, max_length=200)]] = Field(
        min_length=1, max_length=100
    )
    filters: Filters = Field(default_factory=dict)
    account_id: AccountId | None = None
    start: datetime | None = Field(None, alias="from")
    end: datetime | None = Field(None, alias="to")


@dataclass(frozen=True)
class _Matcher:
    """What a dry run matches with: the body's types and filters, in one account."""

    account_id: str
    event_types: list[str]
    filters: dict[str, FilterSpec]


def dry_run(svc: Services, body: DryRun, key: ApiKey) -> dict[str, Any]:
    """Events and orders of a period a rule (not saved) would match, with a sample of 20."""
    period = events_period(body.start, body.end)
    account_id = account_scope(key, body.account_id) or "default"
    return views.dry_run(svc.store, period, _Matcher(account_id, body.event_types, body.filters))


def _caller_event_allowed(rule: Rule, event: OrderEvent, actor: ApiKey) -> None:
    """A caller-written test event needs a key that may publish, and must be one the rule
    would send (its account, an event type it takes, its filters): a test cannot deliver a
    signed webhook of a kind the rule never subscribed to."""
    if not allows(actor.role, Permission.INGEST):
        raise Forbidden(
            "a test with an event of your own needs a role that may publish events "
            f"({' or '.join(roles_for(Permission.INGEST))}); key {actor.name!r} has the "
            f"{actor.role} role; leave the body out to send the rule's sample event"
        )
    if event.account_id != rule.account_id:
        raise InvalidField(
            "account_id", f"the event must be of the rule's account {rule.account_id!r}"
        )
    if ALL_EVENT_TYPES not in rule.event_types and event.event_type not in rule.event_types:
        raise InvalidField(
            "event_type",
            f"{event.event_type!r} is not an event type rule {rule.id} takes "
            f"({', '.join(rule.event_types)})",
        )
    why = filter_mismatch(event, rule.filters)
    if why is not None:
        raise InvalidField(why.path, f"{why}; rule {rule.id} cannot send this event")


async def send_test(
    svc: Services, rule_id: int, event: OrderEvent | None, actor: ApiKey
) -> dict[str, Any]:
    """Send one signed webhook now and answer with its result (recorded as disparo.test).

    The wait holds no thread: the process's one outcome watcher answers the future.
    """
    rule = svc.rule_book.found(rule_id, actor)
    if event is not None:
        _caller_event_allowed(rule, event, actor)
    job = webhook_test_job(rule, event or sample_event(rule))
    if svc.outcomes is None:
        raise KafkaRefused("this API has no reader of the outcomes topic")
    answer = await asyncio.to_thread(svc.outcomes.expect, job)
    outcome = None
    try:
        await asyncio.to_thread(svc.jobs.queue, [job])
        wait_s = rule.timeout_s + TEST_GRACE_S
        outcome = await asyncio.wait_for(asyncio.wrap_future(answer), wait_s)
    except TimeoutError:
        outcome = None
    finally:
        svc.outcomes.forget(job)
    sent = job.event
    details = {
        "dispatch_id": job.dispatch_id,
        "status": outcome.status if outcome else "no_answer",
        "event_type": sent.event_type,
        "order_id": sent.order_id,
        "caller_event": event is not None,
        "payload_sha256": hashlib.sha256(
            json.dumps(sent.payload, sort_keys=True).encode()
        ).hexdigest(),
    }
    await asyncio.to_thread(
        audit.record, svc.store, actor, "rule.test", str(rule_id), details, rule.account_id
    )
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
