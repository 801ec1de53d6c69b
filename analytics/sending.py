"""Records analytics itself queues (notifications, released and discarded dispatches), acked."""

from __future__ import annotations

from analytics.acked import send_acked
from analytics.api.deps import Services
from disparo.schemas import AttemptOutcome, DispatchJob


def _send(svc: Services, topic: str, key: str, value: bytes, what: str) -> None:
    send_acked(svc.producer, topic, [(key.encode(), value)], f"{what} not queued")


def send_job(svc: Services, job: DispatchJob) -> None:
    """Queue a job (a notification, a released dispatch) and wait until Kafka has it."""
    value = job.model_dump_json().encode()
    _send(svc, svc.topics.dispatch_jobs, job.event.order_id, value, "job")


def send_outcome(svc: Services, outcome: AttemptOutcome) -> None:
    """Queue an outcome (a held dispatch discarded) and wait until Kafka has it."""
    value = outcome.model_dump_json().encode()
    _send(svc, svc.topics.outcomes, outcome.dispatch_id, value, "outcome")
