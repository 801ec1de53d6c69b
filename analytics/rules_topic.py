"""Writes to the rules topic, the source of truth for rules, seen back through the rules view."""

from __future__ import annotations

from kafka import KafkaProducer
from kafka.errors import KafkaError

from analytics.errors import KafkaRefused
from disparo.rules_view import RulesView


def write_rule(
    producer: KafkaProducer, topic: str, view: RulesView, rule_id: int, value: bytes | None
) -> None:
    """Publish a rule (or its tombstone) and wait until the rules view holds it."""
    try:
        meta = producer.send(topic, key=str(rule_id).encode(), value=value).get(30)
    except KafkaError as exc:
        raise KafkaRefused(f"rule not saved, Kafka is unavailable: {exc}") from exc
    view.wait_for(meta.partition, meta.offset, timeout_s=10)
