from consumers.endpoints import SLOW_AFTER_S, SLOW_AFTER_TURNS, SLOW_FACTOR, EndpointGuard
from consumers.waiting import WaitingJobs


def turns(guard: EndpointGuard, n: int = SLOW_AFTER_TURNS) -> None:
    for _ in range(n):
        guard.turn()


def test_only_a_slow_endpoint_fills_up_and_a_backlog_per_endpoint_is_not_counted() -> None:
    now = [0.0]
    guard = EndpointGuard(per_endpoint=2, clock=lambda: now[0])
    waiting = WaitingJobs(guard, backlog=3)
    tickets = [waiting.join("hang:80") for _ in range(4)]
    fast = [waiting.join("fast:80") for _ in range(5)]
    since = guard.started("hang:80")
    guard.started("hang:80")  # both slots held
    assert not waiting.full("hang:80")  # not slow yet: a burst is not a hang
    assert waiting.stuck() == 3 + 3  # each endpoint's backlog is free, the rest counts
    now[0] = SLOW_AFTER_S + 0.1
    turns(guard)
    assert waiting.full("hang:80")
    assert not waiting.full("fast:80")  # five waiting, but its slots turn over
    assert waiting.stuck() == 4 + 3  # all of a slow endpoint's waiting jobs are free
    assert waiting.leave(tickets[0])
    assert not waiting.leave(tickets[0])  # leaving twice counts once
    assert waiting.stuck() == 3 + 3
    assert waiting.leave(tickets[1])
    guard.finished("hang:80", since)  # a slot came back: no longer slow
    assert not waiting.full("hang:80")
    assert waiting.stuck() == 2 + 3
    assert all(waiting.leave(t) for t in fast)
    assert waiting.stuck() == 2


def test_an_endpoint_known_to_answer_slowly_gets_longer_before_it_counts_as_slow() -> None:
    now = [0.0]
    guard = EndpointGuard(per_endpoint=1, clock=lambda: now[0])
    since = guard.started("slow:80")
    now[0] = 1.0
    guard.finished("slow:80", since)  # its answers take a second
    guard.started("slow:80")
    turns(guard)
    now[0] += SLOW_AFTER_S + 0.1
    assert not guard.slow("slow:80")  # quiet for longer than SLOW_AFTER_S, not 4 answers long
    now[0] = 1.0 + SLOW_FACTOR * 1.0 + 0.1
    assert guard.slow("slow:80")
    fresh = guard.started("new:80")  # no answer known yet: SLOW_AFTER_S applies
    now[0] += SLOW_AFTER_S + 0.1
    turns(guard)
    assert guard.slow("new:80")
    guard.finished("new:80", fresh)
    assert not guard.slow("new:80")


def test_a_worker_held_up_itself_does_not_take_its_endpoint_for_slow() -> None:
    now = [0.0]
    guard = EndpointGuard(per_endpoint=2, clock=lambda: now[0])
    waiting = WaitingJobs(guard, backlog=1)
    for _ in range(5):
        waiting.join("fast:80")
    guard.started("fast:80")
    guard.started("fast:80")
    now[0] = 10 * SLOW_AFTER_S  # the worker's loop did not run: its answers are unread
    assert not guard.slow("fast:80")
    assert not waiting.full("fast:80")
    assert waiting.stuck() == 1
    turns(guard, SLOW_AFTER_TURNS - 1)
    assert not guard.slow("fast:80")
    guard.finished("fast:80", now[0] - 0.01)  # read on the next turn: a 10 ms answer
    turns(guard, SLOW_AFTER_TURNS - 1)
    assert not guard.slow("fast:80")  # a slot is free again
    guard.started("fast:80")
    now[0] += 10 * SLOW_AFTER_S
    assert not guard.slow("fast:80")  # no turn since its last answer
    turns(guard)
    assert guard.slow("fast:80")  # quiet for two turns and for longer than SLOW_AFTER_S
    assert waiting.full("fast:80")


def test_an_endpoint_back_from_idle_is_quiet_only_from_when_its_slots_filled() -> None:
    now = [0.0]
    guard = EndpointGuard(per_endpoint=2, clock=lambda: now[0])
    guard.finished("fast:80", guard.started("fast:80") - 0.01)  # one quick answer, then idle
    now[0] = 60.0
    turns(guard, 100)
    guard.started("fast:80")
    guard.started("fast:80")  # a burst fills both slots at once
    assert not guard.slow("fast:80")  # its last answer is a minute old, but it just got work
    turns(guard)
    assert not guard.slow("fast:80")
    now[0] += SLOW_AFTER_S + 0.1
    assert guard.slow("fast:80")  # now nothing came back for SLOW_AFTER_S and two turns
