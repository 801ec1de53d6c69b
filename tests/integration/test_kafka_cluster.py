"""Three brokers, topics with 3 replicas and min.insync.replicas 2; one broker SIGKILLed."""

from __future__ import annotations

import os
import signal
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from kafka.admin import ConfigResource, ConfigResourceType

from deploy.local.broker import KafkaCluster, temporary_cluster
from disparo.kafka import make_admin
from tests.integration.conftest import (
    Stack,
    dispatch_ids,
    eventually,
    order_events,
    running_stack,
    stacks_stopped,
)
from tests.integration.receiver import Receiver

pytestmark = [pytest.mark.integration, pytest.mark.timeout(420)]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaCluster]:
    with temporary_cluster(tmp_path_factory.mktemp("kafka-cluster"), size=3) as started:
        yield started
        stacks_stopped()  # the stacks' services leave their groups before the brokers go


def replication_of(stack: Stack) -> tuple[set[int], set[str]]:
    """Replica counts of the stack's topics' partitions, and their min.insync.replicas."""
    admin = make_admin(stack.settings)
    try:
        names = [spec.name for spec in stack.topics.specs(["1s", "2s"])]
        described = admin.describe_topics(names)
        replicas = {len(p["replicas"]) for t in described for p in t["partitions"]}
        resources = [ConfigResource(ConfigResourceType.TOPIC, name) for name in names]
        responses = admin.describe_configs(resources)
        min_isr = {
            str(entry["config_value"])
            for response in responses
            for resource in response.to_object()["resources"]
            for entry in resource["config_entries"]
            if entry["config_names"] == "min.insync.replicas"
        }
        return replicas, min_isr
    finally:
        admin.close()


def test_every_dispatch_gets_one_final_outcome_when_a_broker_dies(
    cluster: KafkaCluster, receiver: Receiver, tmp_path: Path
) -> None:
    with running_stack(cluster.bootstrap, tmp_path, DISPARO_TOPIC_REPLICATION="3") as stack:
        assert replication_of(stack) == ({3}, {"2"})
        rule = stack.active_rule(name="r", event_types=["*"], url=f"{receiver.url}/ok")
        events = order_events("BROKER", 600, orders=120)
        expected = dispatch_ids(events, rule["id"])

        stack.publisher.publish_many(events[:300])
        receiver.wait_for("/ok", 100, timeout_s=60)
        victim = cluster.nodes[0]
        pid = cluster.pid(victim)
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        stack.publisher.publish_many(events[300:])  # acks=all still holds with 2 of 3 in sync

        def all_delivered() -> bool:
            return receiver.webhook_ids("/ok") >= expected

        eventually(all_delivered, 180, "every webhook delivered with a broker down")
        stack.wait_all_final(expected, 120)

        # A job whose offset commit was lost may be delivered twice; its attempt keeps one id,
        # so de-duplicated by attempt every dispatch has exactly one final outcome.
        rows = stack.all_rows()
        final_attempts = {(r["dispatch_id"], r["attempt_id"]) for r in rows if r["final"]}
        per_dispatch = Counter(dispatch for dispatch, _ in final_attempts)
        assert set(per_dispatch) == expected
        assert set(per_dispatch.values()) == {1}
        assert all(r["status"] == "success" for r in rows)
        for name in stack.names:
            assert stack.table.pid(name) is not None, f"{name} died:\n{stack.log_tail(name)}"
