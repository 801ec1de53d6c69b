"""settle(): a failed attempt becomes final or schedules the next attempt's job."""

from __future__ import annotations

from datetime import timedelta

from consumers.retry_policy import RetryPolicy
from consumers.settle import settle
from disparo.retry_tiers import parse_schedule
from disparo.schemas import now_utc
from tests.factories import attempt, job

POLICY = RetryPolicy(parse_schedule("5s,1m"))
AT = now_utc()


def test_a_success_is_recorded_as_it_is_with_no_retry() -> None:
    done = attempt("ORD-1", AT)
    settled = settle(job(), done, POLICY, 0.5)
    assert settled.outcome == done
    assert settled.retry is None


def test_a_retried_failure_schedules_the_next_attempt_on_its_tier() -> None:
    first = job(max_attempts=3)
    failed = attempt("ORD-1", AT, status="failure", final=False)
    settled = settle(first, failed, POLICY, 0.5)  # 0.5 = no jitter
    assert settled.outcome.final is False
    assert settled.outcome.retry_tier == "5s"
    assert settled.outcome.retry_at == AT + timedelta(seconds=5)
    assert settled.retry is not None
    assert settled.retry.attempt == first.attempt + 1
    assert settled.retry.not_before == AT + timedelta(seconds=5)
    assert settled.retry.dispatch_id == first.dispatch_id


def test_the_last_attempt_and_a_final_4xx_end_the_dispatch() -> None:
    last = job(max_attempts=1)
    failed = attempt("ORD-1", AT, status="failure", final=False)
    assert settle(last, failed, POLICY, 0.5).outcome.final is True
    gone = attempt("ORD-1", AT, status="failure", reason="http_4xx", http_status=410, final=False)
    settled = settle(job(max_attempts=5), gone, POLICY, 0.5)
    assert settled.outcome.final is True
    assert settled.retry is None


def test_a_manual_resend_is_one_attempt() -> None:
    manual = job(max_attempts=5).model_copy(update={"manual": True})
    failed = attempt("ORD-1", AT, status="failure", final=False)
    settled = settle(manual, failed, POLICY, 0.5)
    assert settled.outcome.final is True
    assert settled.retry is None
