"""The dead-letter format, one for every stage: the original bytes, with why and whence."""

from __future__ import annotations

import logging
from typing import Any

from kafka import KafkaProducer

from disparo.metrics import DEAD_LETTERS

log = logging.getLogger(__name__)
MAX_REASON_CHARS = 2000


def dead_letter_headers(
    reason: str, stage: str, topic: str, partition: int, offset: int
) -> list[tuple[str, bytes]]:
    """Kafka headers that say where a dead-lettered message came from and why."""
    return [
        ("disparo.reason", reason[:MAX_REASON_CHARS].encode()),
        ("disparo.stage", stage.encode()),
        ("disparo.source.topic", topic.encode()),
        ("disparo.source.partition", str(partition).encode()),
        ("disparo.source.offset", str(offset).encode()),
    ]


class DeadLetters:
    """Sends records a stage cannot handle to the dead-letter topic, counted and logged."""

    def __init__(self, producer: KafkaProducer, topic: str, stage: str) -> None:
        self.producer = producer
        self.topic = topic
        self.stage = stage

    def send(self, record: Any, reason: str, what: str) -> Any:
        """Dead-letter a consumed `record` (`what` is the metric's bounded reason label)."""
        DEAD_LETTERS.labels(self.stage, what).inc()
        log.warning(
            "dead-lettered %s@%s/%s: %s", record.topic, record.partition, record.offset, reason
        )
        headers = dead_letter_headers(
            reason, self.stage, record.topic, record.partition, record.offset
        )
        return self.producer.send(self.topic, key=record.key, value=record.value, headers=headers)
