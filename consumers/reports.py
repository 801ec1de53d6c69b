"""The reporting hook: each settled attempt counted, each failure and deferral logged."""

from __future__ import annotations

import logging

from consumers import classify, metrics
from consumers.attempt import Attempt
from consumers.hooks import Host, JobHook
from disparo.parking import DeferReason
from disparo.schemas import DispatchJob

log = logging.getLogger("consumers.worker")  # the worker's log, where operators look


class Reports(JobHook):
    """Metrics per rule, attempt number, retry tier and metered account; failure logs."""

    def __init__(self, metered: frozenset[str] = frozenset()) -> None:
        self.metered = metered  # accounts with metric series of their own

    def on_defer(
        self, host: Host, job: DispatchJob, endpoint: str, wait_s: float, why: DeferReason
    ) -> None:
        metrics.DEFERRED.labels(why).inc()
        # A paced rule's backlog parks by design, one line each: the count says enough.
        log.log(
            logging.DEBUG if why == classify.RATE_LIMITED else logging.INFO,
            "deferred %s (%s) for %s, back in %.0fs",
            job.dispatch_id,
            why,
            endpoint,
            wait_s,
            extra={
                "dispatch_id": job.dispatch_id,
                "order_id": job.event.order_id,
                "rule_id": job.target.rule_id,
                "endpoint": endpoint,
            },
        )

    def on_settled(self, host: Host, job: DispatchJob, attempt: Attempt, partition: int) -> None:
        if attempt.retry_tier:
            metrics.bound(metrics.RETRIES, attempt.retry_tier).inc()
        if attempt.status == "failure":
            _log_failure(attempt)
        if attempt.status in ("success", "failure"):
            metrics.count_rule_delivery(job.target.rule_id, attempt.status)
            if job.event.account_id in self.metered:
                account = job.event.account_id
                metrics.bound(metrics.ACCOUNT_DELIVERIES, account, attempt.status).inc()
            manual = "true" if job.manual else "false"
            metrics.bound(metrics.ATTEMPTS, str(job.attempt), manual).inc()


def _log_failure(attempt: Attempt) -> None:
    log.info(
        "attempt %d of %s failed: %s (%s); %s",
        attempt.attempt,
        attempt.dispatch_id,
        attempt.reason,
        attempt.error,
        f"retry via {attempt.retry_tier}" if attempt.retry_tier else "final",
        extra={
            "dispatch_id": attempt.dispatch_id,
            "order_id": attempt.order_id,
            "rule_id": attempt.rule_id,
            "attempt": attempt.attempt,
            "reason": attempt.reason,
            "retry_tier": attempt.retry_tier,
        },
    )
