"""Consumer-group lag against a real broker: log end minus committed, whole backlog if none."""

from __future__ import annotations

import uuid

import pytest
from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata

from disparo.kafka import ensure_topics, make_producer
from disparo.lag import CONSUMER_LAG, GroupLag, group_backlog, lag_clients
from disparo.settings import KernelSettings
from disparo.topics import Topics
from tests.integration.conftest import eventually

pytestmark = pytest.mark.integration


def test_lag_counts_from_the_first_offset_until_the_group_commits(kafka_bootstrap: str) -> None:
    settings = KernelSettings(
        kafka_bootstrap=kafka_bootstrap, topic_prefix=f"l{uuid.uuid4().hex[:8]}."
    )
    ensure_topics(settings)
    topic = Topics(settings.topic_prefix).outcomes
    group = f"{settings.topic_prefix}never-assigned"
    producer = make_producer(settings)
    for i in range(30):
        producer.send(topic, key=f"k{i}".encode(), value=b"{}", partition=i % 3)
    producer.flush(30)
    producer.close()
    admin, probe = lag_clients(settings, "test")

    def backlog() -> dict[TopicPartition, int] | None:
        try:
            return group_backlog(admin, probe, group, [topic])
        except KafkaError:  # the group coordinator is being created
            return None

    try:
        before = eventually(backlog, 30, "the group's lag")
        assert sum(before.values()) == 30
        assert before[TopicPartition(topic, 0)] == 10

        committer = KafkaConsumer(bootstrap_servers=kafka_bootstrap, group_id=group)
        committer.commit({TopicPartition(topic, 0): OffsetAndMetadata(4, "", -1)})
        committer.close()
        after = backlog()
        assert after is not None
        assert after[TopicPartition(topic, 0)] == 6
        assert sum(after.values()) == 26
    finally:
        probe.close()
        admin.close()

    meter = GroupLag(settings, group, [topic], every_s=0.2)
    meter.start()
    try:
        eventually(lambda: meter.total() == 26, 30, "the lag thread to measure 26")
        gauge = CONSUMER_LAG.labels(group, topic, "0")._value.get()
        assert gauge == 6
    finally:
        meter.stop()
