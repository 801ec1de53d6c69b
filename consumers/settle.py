"""What an attempt's outcome means for its dispatch: final, or the next attempt's job."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from consumers.attempt import Attempt
from consumers.retry_policy import RetryPolicy
from disparo.schemas import DispatchJob


@dataclass(frozen=True)
class Settled:
    """The outcome to record (final flag and retry tier set) and the retry job, if any."""

    outcome: Attempt
    retry: DispatchJob | None = None  # due at outcome.retry_at, on outcome.retry_tier's topic


def settle(job: DispatchJob, outcome: Attempt, policy: RetryPolicy, rand: float) -> Settled:
    """Decide a failed attempt's next step; a manual resend is one attempt, as ops asked."""
    if outcome.status != "failure":
        return Settled(outcome)
    retry = None
    if not job.manual:
        retry = policy.next_retry(
            job.attempt,
            job.target.max_attempts,
            outcome.reason,
            outcome.http_status,
            outcome.retry_after_s,
            rand,
        )
    if retry is None:
        return Settled(outcome.replace(final=True))
    when = outcome.dispatched_at + timedelta(seconds=retry.delay_s)
    scheduled = outcome.replace(final=False, retry_tier=retry.tier.name, retry_at=when)
    return Settled(scheduled, job.retry_at(when))
