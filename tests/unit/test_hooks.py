"""The worker's per-job hooks, each alone: what they decide and what they ask of the worker."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from consumers import classify, metrics
from consumers.attempt import Attempt
from consumers.endpoint_watch import EndpointWatch
from consumers.endpoints import EndpointGuard
from consumers.hooks import Defer, Place, Wait
from consumers.reports import Reports
from consumers.rule_pace import RulePace
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


def _paced(pace: RulePace, n: int, **target: Any) -> list[Any]:
    """The decisions for `n` new jobs of one rule (`target`: its max_per_second, id...)."""
    place = Place(None, None, True, ENDPOINT)
    return [pace.before_attempt(Host(), job(**target), place) for _ in range(n)]


def test_a_paced_rule_waits_its_turn_at_this_workers_share_then_parks_the_rest() -> None:
    now = [100.0]
    pace = RulePace(clock=lambda: now[0], wait_s=1.0)
    pace.follow(3, 6)  # half the partitions: half of 20/s
    decisions = _paced(pace, 14, max_per_second=20.0)
    assert decisions[0] is None  # the first goes at once
    waits = [d.wait_s for d in decisions[1:11]]
    assert all(isinstance(d, Wait) for d in decisions[1:11])
    assert waits == pytest.approx([0.1 * i for i in range(1, 11)])  # 10/s, evenly spaced
    parked = decisions[11:]
    assert all(isinstance(d, Defer) and d.why == classify.RATE_LIMITED for d in parked)
    # Parked jobs come back spread at the rate, after the turns already given.
    assert [d.wait_s for d in parked] == pytest.approx([1.2, 1.3, 1.4])
    now[0] = 101.05  # time passed: the next free turn (101.1) is within the window again
    [again] = _paced(pace, 1, max_per_second=20.0)
    assert isinstance(again, Wait)
    assert again.wait_s == pytest.approx(0.05)


def test_rules_without_a_rate_and_other_rules_are_not_held_by_a_paced_one() -> None:
    pace = RulePace(clock=lambda: 5.0)
    _paced(pace, 3, max_per_second=1.0)
    assert _paced(pace, 50) == [None] * 50
    assert _paced(pace, 1, rule_id=999, max_per_second=1.0) == [None]


def test_the_share_follows_the_partitions_owned() -> None:
    pace = RulePace(clock=lambda: 0.0, wait_s=10.0)
    pace.follow(6, 6)
    alone = _paced(pace, 3, rule_id=7, max_per_second=10.0)
    assert [getattr(d, "wait_s", 0.0) for d in alone] == pytest.approx([0.0, 0.1, 0.2])
    pace.follow(1, 6)
    sixth = _paced(pace, 3, rule_id=8, max_per_second=6.0)
    assert [getattr(d, "wait_s", 0.0) for d in sixth] == pytest.approx([0.0, 1.0, 2.0])
    pace.follow(0, 6)  # owns nothing (so gets no jobs): the share is left as it was
    assert pace.share == pytest.approx(1 / 6)


def test_a_rate_limited_defer_does_not_park_the_endpoint() -> None:
    watch = EndpointWatch(EndpointGuard())
    host = Host()
    watch.on_defer(host, job(), ENDPOINT, 3.0, classify.RATE_LIMITED)
    assert host.told == []


def test_jobs_that_reach_their_slots_together_go_no_faster_than_the_share() -> None:
    now = [0.0]
    pace = RulePace(clock=lambda: now[0])
    pace.follow(3, 6)
    jobs = [job(max_per_second=8.0) for _ in range(7)]
    assert pace.sending(jobs[0]) == 0.0
    now[0] = 1.6  # jobs 1-6 waited behind other rules' jobs for the slots: all come now
    early = [pace.sending(j) for j in jobs[1:]]
    assert early[0] == 0.0  # the first goes; the rest one gap (1/4 s at 4/s) after it
    assert early[1:] == pytest.approx([0.25] * 5)
    now[0] = 1.849  # a hair early for its turn at 1.85 (a timer's resolution)
    assert pace.sending(jobs[2]) == 0.0
    assert pace.sending(jobs[3]) == pytest.approx(0.251)
    assert pace.sending(job()) == 0.0  # a rule without a rate is never early


def test_a_rules_test_webhook_never_waits_for_a_turn() -> None:
    pace = RulePace(clock=lambda: 0.0)
    _paced(pace, 5, max_per_second=0.01)
    tested = job(max_per_second=0.01).model_copy(update={"test": True})
    assert pace.before_attempt(Host(), tested, Place(None, None, True, ENDPOINT)) is None
    assert pace.sending(tested) == 0.0


def test_an_open_circuit_lets_a_rules_test_webhook_through() -> None:
    watch = EndpointWatch(EndpointGuard(threshold=1, open_s=30))
    failed = attempt("O-3", now_utc(), "failure", reason=classify.reason_for_status(503))
    watch.after_attempt(Host(), job(), failed, ENDPOINT)
    place = Place(None, None, True, ENDPOINT)
    assert isinstance(watch.before_attempt(Host(), job(), place), Defer)
    tested = job().model_copy(update={"test": True})
    assert watch.before_attempt(Host(), tested, place) is None
