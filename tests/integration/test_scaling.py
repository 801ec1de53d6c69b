"""Several delivery workers share the partitions; losing one loses no dispatch."""

from __future__ import annotations

import os
import signal

import pytest

from disparo.local.kafka import free_port
from tests.integration.conftest import DISPARO, Stack, dispatch_ids, eventually, order_events
from tests.integration.receiver import Receiver

pytestmark = pytest.mark.integration


def test_three_workers_share_partitions_and_the_others_take_over_a_killed_one(
    stack: Stack, receiver: Receiver
) -> None:
    extra = {f"worker-{n}": free_port() for n in (2, 3)}
    try:
        for name, port in extra.items():
            env = {**stack.env, "DISPARO_WORKER_PORT": str(port)}
            stack.table.start(name, [DISPARO, "worker"], env)
        # Ready means "holds partitions": each of the three got a share.
        ports = [int(stack.env["DISPARO_WORKER_PORT"]), *extra.values()]
        for name, port in zip(["worker", *extra], ports, strict=True):
            stack.table.wait_http(name, f"http://127.0.0.1:{port}/readyz", 90)

        rule = stack.active_rule(name="r", event_types=["*"], url=f"{receiver.url}/ok")
        events = order_events("SCALE", 900, orders=150)
        expected = dispatch_ids(events, rule["id"])
        stack.publisher.publish_many(events)
        receiver.wait_for("/ok", 100, timeout_s=60)
        victim = stack.table.pid("worker-2")
        assert victim is not None
        os.kill(victim, signal.SIGKILL)

        def all_delivered() -> bool:
            return receiver.webhook_ids("/ok") >= expected

        eventually(all_delivered, 120, "the two remaining workers to deliver everything")

        stack.wait_all_final(expected, 60)
    finally:
        for name in extra:
            stack.table.stop(name, grace_s=10)
