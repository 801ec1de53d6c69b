"""Several workers or dispatchers share the partitions; losing one loses no dispatch."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import httpx
import pytest

from deploy.local.broker import free_port
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


def routed(dispatcher_url: str) -> float:
    """Events a dispatcher instance routed to at least one rule, from its /metrics."""
    text = httpx.get(f"{dispatcher_url}/metrics", timeout=5).text
    for line in text.splitlines():
        if line.startswith('disparo_dispatcher_events_total{result="routed"}'):
            return float(line.split()[-1])
    return 0.0


def test_two_dispatchers_share_events_and_one_takes_over_when_the_other_dies(
    stack: Stack, receiver: Receiver, tmp_path: Path
) -> None:
    port = free_port()
    second = f"http://127.0.0.1:{port}"
    env = {
        **stack.env,
        "DISPARO_DISPATCHER_PORT": str(port),
        "DISPARO_DISPATCHER_DATA_DIR": str(tmp_path / "dispatcher-2"),
    }
    try:
        stack.table.start("dispatcher-2", [DISPARO, "dispatcher"], env)
        stack.table.wait_http("dispatcher-2", f"{second}/readyz", 90)
        stack.table.wait_http("dispatcher", f"{stack.dispatcher}/readyz", 90)
        rule = stack.active_rule(name="r", event_types=["*"], url=f"{receiver.url}/ok")
        # Every instance holds every rule (the global table), whichever reads the rules topic.
        eventually(
            lambda: (
                {"id": rule["id"], "active": True}
                in httpx.get(f"{second}/rules", timeout=5).json()["rules"]
            ),
            30,
            "the second dispatcher to hold the rule",
        )
        events = order_events("DISP", 600, orders=200)
        expected = dispatch_ids(events, rule["id"])
        stack.publisher.publish_many(events[:300])
        receiver.wait_for("/ok", 300, timeout_s=60)
        assert routed(stack.dispatcher) > 0
        assert routed(second) > 0  # both instances had partitions of order-events

        victim = stack.table.pid("dispatcher")
        assert victim is not None
        os.kill(victim, signal.SIGKILL)
        stack.publisher.publish_many(events[300:])

        eventually(
            lambda: receiver.webhook_ids("/ok") >= expected,
            120,
            "the remaining dispatcher to route the rest",
        )
        stack.wait_all_final(expected, 60)
    finally:
        stack.table.stop("dispatcher-2", grace_s=10)
