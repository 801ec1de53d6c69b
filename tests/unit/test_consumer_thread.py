"""A ConsumerThread runs every call to its consumer on one thread."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from kafka import TopicPartition

from disparo.consumer import ConsumerThread

TP = TopicPartition("jobs", 0)


class RecordingConsumer:
    """Stands in for a KafkaConsumer: notes the thread of every call."""

    def __init__(self) -> None:
        self.threads = {threading.get_ident()}
        self.assigned: set[TopicPartition] = set()

    def assignment(self) -> set[TopicPartition]:
        self.threads.add(threading.get_ident())
        return set(self.assigned)

    def poll(self) -> dict[Any, Any]:
        self.threads.add(threading.get_ident())
        self.assigned = {TP}
        return {}

    def close(self) -> None:
        self.threads.add(threading.get_ident())


def test_creation_calls_and_close_happen_on_one_thread_that_is_not_the_callers() -> None:
    owner = ConsumerThread(RecordingConsumer, "test-consumer")
    consumer: RecordingConsumer = owner.consumer
    owner.run(consumer.poll)

    async def from_the_loop() -> None:
        await owner.call(consumer.poll)
        await asyncio.gather(*(owner.call(consumer.assignment) for _ in range(20)))

    asyncio.run(from_the_loop())
    owner.close()
    assert len(consumer.threads) == 1
    assert threading.get_ident() not in consumer.threads


def test_assigned_is_a_snapshot_refreshed_after_each_call() -> None:
    owner = ConsumerThread(RecordingConsumer, "test-consumer")
    assert owner.assigned == frozenset()
    owner.run(owner.consumer.poll)
    assert owner.assigned == frozenset({TP})
    owner.close()
