"""A rule's max_per_second on the real stack: two workers hold it together, jobs over it
wait (none dropped, none failed), and a rule without a limit in the same run is not slowed."""

from __future__ import annotations

import httpx
import pytest

from deploy.local.broker import free_port
from tests.integration.conftest import DISPARO, Stack, eventually, order_events
from tests.integration.receiver import Receiver

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]
RATE = 20.0
EVENTS = 600


def _series(url: str, series: str) -> float:
    """One series' value on a service's /metrics (`name` or `name{label="v"}`); 0 if absent."""
    for line in httpx.get(f"{url}/metrics", timeout=10).text.splitlines():
        if line.startswith(f"{series} "):
            return float(line.split()[-1])
    return 0.0


def _busiest_second(times: list[float]) -> int:
    """The most arrivals in any one-second window (sliding, starting at each arrival)."""
    times, most, start = sorted(times), 0, 0
    for end, at in enumerate(times):
        while at - times[start] >= 1.0:
            start += 1
        most = max(most, end - start + 1)
    return most


def test_a_paced_rule_holds_its_rate_across_two_workers_and_others_are_not_slowed(
    stack: Stack, receiver: Receiver
) -> None:
    port = free_port()
    second = f"http://127.0.0.1:{port}"
    stack.table.start(
        "worker-2", [DISPARO, "worker"], {**stack.env, "DISPARO_WORKER_PORT": str(port)}
    )
    try:
        workers = (stack.worker, second)
        stack.table.wait_http("worker-2", f"{second}/readyz", 90)
        # Both workers hold dispatch-jobs partitions, all of them between the two.
        owned = lambda: [_series(w, "disparo_job_partitions") for w in workers]  # noqa: E731
        eventually(lambda: all(owned()) and sum(owned()) == 6, 60, "the partitions shared")

        paced = stack.active_rule(
            name="paced", event_types=["*"], url=f"{receiver.url}/paced", max_per_second=RATE
        )
        free = stack.active_rule(name="free", event_types=["*"], url=f"{receiver.url}/free")
        assert paced["max_per_second"] == RATE
        assert free["max_per_second"] is None
        stack.publisher.publish_many(order_events("RATE", EVENTS))

        got = receiver.wait_for("/paced", EVENTS, timeout_s=150)
        arrivals = [r.at for r in got]
        assert _busiest_second(arrivals) <= 22, _busiest_second(arrivals)
        assert len(receiver.webhook_ids("/paced")) == EVENTS  # all 600, each once
        # The unlimited rule's 600 were all in before the paced one had half of its own.
        fast = sorted(r.at for r in receiver.on("/free"))
        assert len(fast) == EVENTS
        assert fast[-1] < sorted(arrivals)[EVENTS // 2]
        # Over the rate is waiting, not failing: one successful first attempt per dispatch.
        rows = stack.rows_eventually(EVENTS, rule_id=paced["id"])
        assert {(r["status"], r["attempt"]) for r in rows} == {("success", 1)}
        parked = sum(_series(w, 'disparo_deferred_total{reason="rate_limited"}') for w in workers)
        assert parked > 0  # the backlog beyond a moment's turns waited in a retry tier
    finally:
        stack.table.stop("worker-2", grace_s=10)
