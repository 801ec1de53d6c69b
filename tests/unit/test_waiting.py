from consumers.endpoints import SLOW_AFTER_S, EndpointGuard
from consumers.waiting import WaitingJobs


def test_only_a_slow_endpoint_fills_up_and_its_waiting_jobs_are_stuck() -> None:
    now = [0.0]
    guard = EndpointGuard(per_endpoint=2, clock=lambda: now[0])
    waiting = WaitingJobs(guard, backlog=3)
    tickets = [waiting.join("hang:80") for _ in range(3)]
    fast = [waiting.join("fast:80") for _ in range(5)]
    guard.started("hang:80")
    guard.started("hang:80")  # both slots held
    assert not waiting.full("hang:80")  # not slow yet: a burst is not a hang
    assert waiting.stuck() == 0
    now[0] = SLOW_AFTER_S + 0.1
    assert waiting.full("hang:80")
    assert not waiting.full("fast:80")  # five waiting, but its slots turn over
    assert waiting.stuck() == 3
    assert waiting.leave(tickets[0])
    assert not waiting.leave(tickets[0])  # leaving twice counts once
    assert waiting.stuck() == 2
    guard.finished("hang:80")  # a slot came back: no longer slow
    assert waiting.stuck() == 0
    assert all(waiting.leave(t) for t in fast)
