"""Crashes at the worst moments: nothing lost, nothing counted twice."""

from __future__ import annotations

import os
import signal

import pytest

from tests.integration.conftest import DISPARO, Stack, dispatch_ids, eventually, order_events
from tests.integration.receiver import Receiver

pytestmark = pytest.mark.integration


def test_worker_killed_with_sigkill_mid_stream_loses_no_dispatch(
    stack: Stack, receiver: Receiver
) -> None:
    rule = stack.active_rule(name="r", event_types=["*"], url=f"{receiver.url}/ok")
    events = order_events("KILL", 2000, orders=400)
    expected = dispatch_ids(events, rule["id"])
    stack.publisher.publish_many(events)
    receiver.wait_for("/ok", 300, timeout_s=60)
    pid = stack.table.pid("worker")
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    in_flight = 2000 - len(receiver.on("/ok"))
    assert in_flight > 0, "the worker finished before it could be killed; raise the count"
    stack.table.start("worker", [DISPARO, "worker"], stack.env)

    stack.wait_all_final(expected, 120)
    assert receiver.webhook_ids("/ok") == expected


def test_sink_killed_between_insert_and_commit_leaves_exact_counts(
    stack: Stack, receiver: Receiver
) -> None:
    stack.active_rule(name="r", event_types=["*"], url=f"{receiver.url}/ok")
    stack.table.stop("analytics", grace_s=20)
    stack.table.start(
        "analytics",
        [DISPARO, "analytics"],
        {**stack.env, "DISPARO_FAILPOINT": "sink.after_insert=exit"},
    )
    stack.publisher.publish_many(order_events("SINK", 50))
    receiver.wait_for("/ok", 50)
    # The sink inserts its first batch, then the process dies before committing offsets.
    eventually(lambda: stack.table.pid("analytics") is None, 60, "the failpoint to fire")

    stack.table.start("analytics", [DISPARO, "analytics"], stack.env)
    stack.table.wait_http("analytics", f"{stack.api}/readyz", 60)
    eventually(lambda: stack.total() >= 50, 30, "50 rows")
    stack.publisher.publish_many(order_events("SINK2", 10))
    eventually(lambda: stack.total() >= 60, 30, "60 rows")
    rows = stack.all_rows()
    assert len(rows) == 60
    assert len({r["attempt_id"] for r in rows}) == 60
    assert stack.total() == 60


def test_a_hanging_endpoint_does_not_hold_up_a_healthy_one(
    stack: Stack, receiver: Receiver
) -> None:
    hanging = Receiver()  # its own host:port, so its own slots and breaker
    try:
        stack.active_rule(
            name="stuck", event_types=["*"], url=f"{hanging.url}/hang", timeout_s=10, max_attempts=1
        )
        healthy = stack.create_rule(name="ok", event_types=["*"], url=f"{receiver.url}/ok")
        stack.wait_rule_applied(healthy["id"], active=True)
        stack.publisher.publish_many(order_events("HANG", 50))
        hanging.wait_for("/hang", 1, timeout_s=30)
        receiver.wait_for("/ok", 50, timeout_s=30)
        # Every healthy delivery is recorded while the stuck ones still wait for their 10 s
        # timeout: the healthy endpoint never queued behind the hanging one.
        eventually(lambda: len(stack.all_rows(status="success")) == 50, 30, "50 successes")
        assert stack.all_rows(status="failure") == []
        assert len(hanging.on("/hang")) >= 1
    finally:
        hanging.close()
