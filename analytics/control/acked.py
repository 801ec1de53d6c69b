"""Sending records from analytics and waiting until Kafka has every one of them."""

from __future__ import annotations

from collections.abc import Sequence

from kafka import KafkaProducer
from kafka.errors import KafkaError
from kafka.producer.future import RecordMetadata

from analytics.errors import KafkaRefused

ACK_TIMEOUT_S = 30


def send_acked(
    producer: KafkaProducer,
    topic: str,
    records: Sequence[tuple[bytes, bytes | None]],
    failure: str,
) -> list[RecordMetadata]:
    """Send (key, value) records and wait for every ack; `KafkaRefused(failure: why)` if not."""
    try:
        futures = [producer.send(topic, key=key, value=value) for key, value in records]
        if len(futures) > 1:
            producer.flush(timeout=ACK_TIMEOUT_S)  # one round trip for the whole batch
        return [f.get(timeout=ACK_TIMEOUT_S) for f in futures]
    except KafkaError as exc:
        raise KafkaRefused(f"{failure}, Kafka is unavailable: {exc}") from exc
