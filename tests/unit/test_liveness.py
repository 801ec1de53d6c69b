"""The analytics liveness check: a sink that stopped turning, or holds nothing with work waiting."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from kafka import TopicPartition

from analytics.history.liveness import sink_problem


@dataclass
class Sink:
    assigned: frozenset[TopicPartition] = field(default_factory=frozenset)
    stalled_s: float = 0.0

    def stalled_for(self) -> float:
        return self.stalled_s


@dataclass
class Lag:
    backlog: int | None = None

    def total(self) -> int | None:
        return self.backlog


def test_a_sink_loop_that_stopped_turning_is_a_problem_after_the_limit() -> None:
    sink = Sink(frozenset({TopicPartition("o", 0)}), stalled_s=1.0)
    problem = sink_problem(sink, threading.current_thread(), Lag(0), limit_s=5)
    assert problem() is None
    sink.stalled_s = 6.0
    assert problem() == "the outcomes sink made no progress for 6 s"


def test_no_partition_with_a_backlog_is_a_problem_once_it_lasts_past_the_limit() -> None:
    sink, lag = Sink(), Lag(backlog=42)
    problem = sink_problem(sink, threading.current_thread(), lag, limit_s=0.05)
    assert problem() is None  # just seen: a rebalance may be under way
    time.sleep(0.1)
    why = problem()
    assert why is not None
    assert "held no partition" in why
    assert "while 42 outcomes wait" in why


def test_no_partition_without_a_backlog_or_before_lag_is_known_is_fine() -> None:
    for backlog in (0, None):
        problem = sink_problem(Sink(), threading.current_thread(), Lag(backlog), limit_s=0.0)
        time.sleep(0.01)
        assert problem() is None


def test_getting_a_partition_resets_the_wait() -> None:
    sink, lag = Sink(), Lag(backlog=5)
    problem = sink_problem(sink, threading.current_thread(), lag, limit_s=0.05)
    problem()
    time.sleep(0.1)
    sink.assigned = frozenset({TopicPartition("o", 1)})
    assert problem() is None
    sink.assigned = frozenset()
    assert problem() is None  # the wait starts again from now
