"""New rule ids, unique across API replicas: the offsets of a single-partition topic."""

from __future__ import annotations

from collections.abc import Callable

from kafka import KafkaProducer
from kafka.errors import KafkaError

from analytics.errors import KafkaRefused

FIRST_RULE_ID = 1000
MAX_SKIPS = 100_000  # ids taken by rules created with an explicit id, or before the sequencer


def next_rule_id(producer: KafkaProducer, topic: str, taken: Callable[[int], bool]) -> int:
    """Claim offsets until one, plus FIRST_RULE_ID, is an id no rule has.

    The broker gives every record of a partition its own offset, so two replicas can never
    get the same one; ids from before the sequencer (or given explicitly) are stepped over.
    """
    for _ in range(MAX_SKIPS):
        try:
            offset = producer.send(topic, value=b"").get(30).offset
        except KafkaError as exc:
            raise KafkaRefused(f"rule not saved, Kafka is unavailable: {exc}") from exc
        candidate: int = FIRST_RULE_ID + offset
        if not taken(candidate):
            return candidate
    raise KafkaRefused(f"no free rule id after {MAX_SKIPS} claims on {topic}")
