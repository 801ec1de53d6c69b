"""A backlog spread over partitions comes back in fetch answers far over 1 MB: read whole."""

from __future__ import annotations

import logging
import uuid

import pytest

from disparo.consumer import group_consumer, subscribe_when_ready
from disparo.kafka import ensure_topics, make_producer
from disparo.settings import KernelSettings
from disparo.topics import Topics

pytestmark = pytest.mark.integration

RECORD_BYTES = 300 * 1024
PER_PARTITION = 6
PARTITIONS = 3


def test_a_fetch_answer_over_one_megabyte_is_read_without_a_reconnect(
    kafka_bootstrap: str, caplog: pytest.LogCaptureFixture
) -> None:
    settings = KernelSettings(
        kafka_bootstrap=kafka_bootstrap, topic_prefix=f"f{uuid.uuid4().hex[:8]}."
    )
    ensure_topics(settings)
    topic = Topics(settings.topic_prefix).outcomes
    producer = make_producer(settings)
    for i in range(PARTITIONS * PER_PARTITION):
        value = bytes([65 + i % 26]) * RECORD_BYTES
        producer.send(topic, key=f"k{i}".encode(), value=value, partition=i % PARTITIONS)
    producer.flush(30)
    producer.close()

    caplog.set_level(logging.WARNING, logger="kafka")
    consumer = group_consumer(settings, f"{settings.topic_prefix}frames", "test-frames")
    try:
        subscribe_when_ready(consumer, [topic])
        got: list[bytes] = []
        for _ in range(40):
            for records in consumer.poll(timeout_ms=500).values():
                got.extend(r.value for r in records)
            if len(got) >= PARTITIONS * PER_PARTITION:
                break
    finally:
        consumer.close()
    # ~5 MB in the topic: a fetch answer holds up to 1 MB per partition, over kafka-python's
    # default frame limit of 1 MB, which closed the connection and refetched.
    assert len(got) == PARTITIONS * PER_PARTITION
    assert all(len(v) == RECORD_BYTES for v in got)
    refused = [r.getMessage() for r in caplog.records if "Invalid frame length" in r.getMessage()]
    assert refused == []
