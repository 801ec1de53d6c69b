"""The duty owner's bookkeeping and the per-replica share of a limit, without a broker."""

from __future__ import annotations

import threading
from datetime import datetime

from analytics.control.duties import DutyOwner
from analytics.control.periodic import Periodic
from analytics.control.rate_limit import RateLimiter, over_limit
from disparo.settings import KernelSettings


class Counting(Periodic):
    """A duty counting its turns and its starts."""

    what = "counting"

    def __init__(self) -> None:
        super().__init__(0.01)
        self.turns = 0
        self.starts = 0
        self.turned = threading.Event()

    def starting(self) -> None:
        self.starts += 1

    def check(self, now: datetime) -> None:
        self.turns += 1
        self.turned.set()


def test_duties_run_only_between_take_and_release_and_restart_after() -> None:
    duty = Counting()
    owner = DutyOwner(KernelSettings(), "t.control", "t.duties", "me", [duty])
    assert not duty.running
    owner.take()
    owner.take()  # told twice (a rebalance gave it back): started once
    assert duty.turned.wait(5)
    assert (owner.owner, duty.running, duty.starts) == (True, True, 1)
    owner.release("revoked")
    turns = duty.turns
    assert (owner.owner, duty.running) == (False, False)
    assert duty.turns == turns  # stopped: no turn after release returned
    duty.turned.clear()
    owner.take()
    assert duty.turned.wait(5)
    assert duty.starts == 2
    owner.release("stopping")


def test_a_limit_is_shared_by_the_live_replicas_and_holds_over_time() -> None:
    now = [0.0]
    replicas = [2]
    limiter = RateLimiter(clock=lambda: now[0], share=lambda: replicas[0])
    taken = 0
    for _ in range(100):  # 10 s, one request of 3 every 0.1 s, limit 10 a second
        if over_limit(limiter, "acme", "events", 3, 10, "second") is None:
            taken += 3
        now[0] += 0.1
    # This replica's share: 5 a second, plus its first bucket (5) and one request lent.
    assert 50 <= taken <= 5 * 10 + 5 + 3
    alone = RateLimiter(clock=lambda: now[0])
    assert over_limit(alone, "acme", "events", 10, 10, "second") is None  # the whole limit
    assert over_limit(alone, "acme", "events", 1, 10, "second") is not None
