"""The job queue: the only analytics code that builds dispatch jobs and sends them to Kafka.

Resends, resend-latest, backfill, test webhooks, held releases and owner notifications all
build their jobs here and queue them through `JobQueue`, which waits until Kafka has them.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from kafka import KafkaProducer
from pydantic import ValidationError

from analytics.control.acked import send_acked
from analytics.errors import Conflict
from analytics.history.schema import EXPUNGED
from disparo.limits import MAX_ATTEMPT
from disparo.notifications import Kind, notification_job
from disparo.schemas import (
    NOTIFICATIONS_RULE_ID,
    AttemptOutcome,
    DispatchJob,
    OrderEvent,
    Rule,
    RuleRef,
    dispatch_id_for,
)
from disparo.topics import Topics


def manual_job(dispatch_id: str, attempt: int, event: OrderEvent, rule: RuleRef) -> DispatchJob:
    """A person's resend of a dispatch: its next attempt, marked manual, with its own id."""
    return DispatchJob(
        dispatch_id=dispatch_id,
        attempt=attempt,
        manual=True,
        resend_id=uuid.uuid4().hex,
        event=event,
        rule=rule,
    )


def resend_job(row: dict[str, Any], rule: Rule | None) -> DispatchJob:
    """The resend of a stored dispatch (a row of `resend_candidates`/`final_failures`) to its
    rule as it is now (rule 0: the account's notification endpoint); Conflict saying why not."""
    rule_id = int(row["rule"])
    if rule_id != NOTIFICATIONS_RULE_ID and rule is None:
        raise Conflict(
            f"rule {rule_id} of dispatch {row['dispatch_id']} "
            "no longer exists; recreate it or leave this dispatch out"
        )
    if row["last_event"] == EXPUNGED:
        raise Conflict(
            f"dispatch {row['dispatch_id']} belongs to an order whose personal data was "
            "expunged: its event is gone, so it cannot be resent; publish the event again"
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
    ref = RuleRef(rule_id=rule_id) if rule is None else RuleRef.of(rule)
    return manual_job(row["dispatch_id"], int(row["last_attempt"]) + 1, event, ref)


def latest_job(event: OrderEvent, rule: Rule, attempt: int) -> DispatchJob:
    """Resend-latest: the order's latest matching event to `rule`, as its next attempt."""
    return manual_job(dispatch_id_for(event.event_id, rule.id), attempt, event, RuleRef.of(rule))


def backfill_job(event: OrderEvent, rule: Rule) -> DispatchJob:
    """A stored event's first attempt for `rule`, as the dispatcher would have made it."""
    return DispatchJob.first(event, rule)


def webhook_test_job(rule: Rule, event: OrderEvent) -> DispatchJob:
    """The manual, one-attempt job of a test webhook: always an event id and a dispatch of
    its own, so a test never shares a real dispatch's `webhook-id` or history."""
    event = event.model_copy(update={"event_id": uuid.uuid4()})
    return DispatchJob(
        dispatch_id=dispatch_id_for(event.event_id, rule.id),
        manual=True,
        resend_id=uuid.uuid4().hex,
        event=event,
        rule=RuleRef.of(rule),
        test=True,
    )


def release_job(row: dict[str, Any], rule: Rule) -> DispatchJob:
    """The job of a held row: the same dispatch and attempt, for the rule as it is now."""
    return DispatchJob(
        dispatch_id=row["dispatch_id"],
        attempt=int(row["attempt"]),
        event=OrderEvent.model_validate_json(row["event_json"]),
        rule=RuleRef.of(rule),
    )


def owner_notice(
    kind: Kind, rule: Rule, episode: str, at: datetime, details: dict[str, Any]
) -> DispatchJob:
    """A notification to the rule's account owner (rule 0), same id for the same episode."""
    return notification_job(kind, rule, episode, at, details)


class JobQueue:
    """Sends jobs (and the outcomes analytics writes itself) and waits until Kafka has them."""

    def __init__(self, producer: KafkaProducer, topics: Topics) -> None:
        self.producer = producer
        self.topics = topics

    def queue(self, jobs: list[DispatchJob], topic: str | None = None) -> None:
        """Send jobs (to the resend topic unless told) and wait until Kafka has them all."""
        if not jobs:
            return
        records = [(j.event.order_id.encode(), j.model_dump_json().encode()) for j in jobs]
        send_acked(self.producer, topic or self.topics.resend, records, "jobs not queued")

    def dispatch(self, jobs: list[DispatchJob]) -> None:
        """Queue first attempts as the dispatcher does (retries, lanes and pauses apply)."""
        self.queue(jobs, self.topics.dispatch_jobs)

    def send_job(self, job: DispatchJob) -> None:
        """Queue one job on dispatch-jobs (a notification, a released dispatch)."""
        self.dispatch([job])

    def send_outcomes(self, outcomes: list[AttemptOutcome]) -> None:
        """Queue outcomes (held dispatches discarded) and wait until Kafka has them all."""
        records = [(o.dispatch_id.encode(), o.model_dump_json().encode()) for o in outcomes]
        if records:
            send_acked(self.producer, self.topics.outcomes, records, "outcomes not queued")
