"""The worker's per-job hooks, each alone: what they decide and what they ask of the worker."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from consumers import classify, metrics
from consumers.attempt import Attempt
from consumers.endpoint_watch import EndpointWatch
from consumers.endpoints import EndpointGuard
from consumers.hooks import Defer, Place
from consumers.reports import Reports
from disparo.schemas import DispatchJob, now_utc
from tests.factories import attempt, job

ENDPOINT = "default/hooks.example.com:443"


@dataclass
class Host:
    """The worker as a hook sees it, keeping what it is asked."""

    recorded: list[Attempt] = field(default_factory=list)
    started: list[DispatchJob] = field(default_factory=list)
    told: list[tuple[str, bytes | None]] = field(default_factory=list)

    def record(self, job: DispatchJob, attempt: Attempt, partition: int) -> None:
        self.recorded.append(attempt)

    def start(self, tp: Any, record: Any, job: DispatchJob, tracked: bool) -> None:
        self.started.append(job)

    def tell(self, endpoint: str, value: bytes | None) -> None:
        self.told.append((endpoint, value))


def test_an_open_circuit_defers_the_job_and_a_healthy_answer_unparks_the_endpoint() -> None:
    now = [0.0]
    watch = EndpointWatch(EndpointGuard(threshold=2, open_s=30, clock=lambda: now[0]))
    host, sent = Host(), job(timeout_s=10)
    place = Place(None, None, True, ENDPOINT)
    assert watch.before_attempt(host, sent, place) is None
    failed = attempt("O-1", now_utc(), "failure", reason=classify.reason_for_status(503))
    for _ in range(2):
        watch.after_attempt(host, sent, failed, ENDPOINT)
    decision = watch.before_attempt(host, sent, place)
    assert isinstance(decision, Defer)
    assert decision.why == classify.CIRCUIT_OPEN
    assert 0 < decision.wait_s <= 30
    watch.on_defer(host, sent, ENDPOINT, decision.wait_s, decision.why)
    watch.on_defer(host, sent, ENDPOINT, decision.wait_s, decision.why)  # written lately
    assert len(host.told) == 1
    assert host.told[0][0] == ENDPOINT
    assert host.told[0][1] is not None
    now[0] = 31.0  # the probe goes, and answers well
    assert watch.before_attempt(host, sent, place) is None
    watch.after_attempt(host, sent, attempt("O-1", now_utc(), duration_ms=20), ENDPOINT)
    assert host.told[-1] == (ENDPOINT, None)  # the park's tombstone
    assert host.recorded == []


def test_a_success_slower_than_half_the_timeout_counts_against_the_endpoint() -> None:
    watch = EndpointWatch(EndpointGuard(threshold=1, open_s=30))
    host, sent = Host(), job(timeout_s=2)
    slow = attempt("O-2", now_utc(), duration_ms=1500)
    watch.after_attempt(host, sent, slow, ENDPOINT)
    assert isinstance(watch.before_attempt(host, sent, Place(None, None, True, ENDPOINT)), Defer)


def test_reports_count_settled_attempts_and_scheduled_retries() -> None:
    reports = Reports(metered=frozenset({"default"}))
    host, sent = Host(), job()

    def value(metric: Any, *labels: str) -> float:
        return float(metric.labels(*labels)._value.get())

    retries = value(metrics.RETRIES, "5s")
    account = value(metrics.ACCOUNT_DELIVERIES, "default", "failure")
    firsts = value(metrics.ATTEMPTS, "1", "false")
    failed = attempt("O-3", now_utc(), "failure", final=False, retry_tier="5s")
    reports.on_settled(host, sent, failed, 0)
    held = attempt("O-3", now_utc(), "held", reason=classify.HELD)
    reports.on_settled(host, sent, held, 0)  # not a delivery: not counted
    assert value(metrics.RETRIES, "5s") == retries + 1
    assert value(metrics.ACCOUNT_DELIVERIES, "default", "failure") == account + 1
    assert value(metrics.ATTEMPTS, "1", "false") == firsts + 1
