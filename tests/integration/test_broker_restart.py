"""The broker restarts in the middle of deliveries: the pipeline resumes by itself."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from deploy.local.broker import REPO_ROOT, KafkaNode, free_port, provision_jars
from deploy.local.processes import ProcessTable
from tests.integration.conftest import (
    Stack,
    dispatch_ids,
    eventually,
    order_events,
    stacks_stopped,
)
from tests.integration.receiver import Receiver

pytestmark = pytest.mark.integration


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[tuple[KafkaNode, ProcessTable]]:
    """A broker of this test's own, so restarting it disturbs no other test."""
    libs = provision_jars(REPO_ROOT / ".local" / "kafka")
    node = KafkaNode(
        libs=libs,
        data_dir=tmp_path / "kafka",
        port=free_port(),
        controller_port=free_port(),
        heap="512m",
    )
    table = ProcessTable(tmp_path / "kafka-run")
    node.start(table)
    try:
        node.wait_ready(90)
        yield node, table
    finally:
        stacks_stopped()  # the stack's services leave their groups before the broker goes
        table.stop("kafka", grace_s=20)


@pytest.fixture
def kafka_bootstrap(broker: tuple[KafkaNode, ProcessTable]) -> str:
    """The stack of this module runs on the test's own broker."""
    return broker[0].bootstrap


def test_broker_restart_during_delivery_loses_nothing_and_recovers_unaided(
    stack: Stack, receiver: Receiver, broker: tuple[KafkaNode, ProcessTable]
) -> None:
    node, table = broker
    rule = stack.active_rule(name="r", event_types=["*"], url=f"{receiver.url}/ok")
    events = order_events("BR", 600, orders=50)
    expected = dispatch_ids(events, rule["id"])
    stack.publisher.publish_many(events[:300])
    receiver.wait_for("/ok", 30, timeout_s=60)

    table.stop("kafka", grace_s=30)  # a clean broker shutdown while deliveries run
    node.start(table)
    node.wait_ready(90)
    stack.publisher.publish_many(events[300:], timeout_s=120)

    def all_delivered() -> bool:
        return receiver.webhook_ids("/ok") >= expected

    eventually(all_delivered, 180, "every event delivered after the broker restart")

    def all_recorded() -> bool:
        return {str(r["dispatch_id"]) for r in stack.all_rows(status="success")} >= expected

    eventually(all_recorded, 120, "every attempt recorded after the broker restart")
    for name in stack.names:
        assert stack.table.pid(name) is not None, f"{name} died:\n{stack.log_tail(name)}"
