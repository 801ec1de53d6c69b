"""Writes to the compacted topics the control plane owns, seen back through their view."""

from __future__ import annotations

from typing import Any

from kafka import KafkaProducer

from analytics.control.acked import send_acked
from disparo.compacted_view import CompactedView


def write_record(
    producer: KafkaProducer,
    topic: str,
    view: CompactedView[Any, Any],
    key: str | int,
    value: bytes | None,
) -> None:
    """Publish a record (or its tombstone) and wait until `view` holds it."""
    [meta] = send_acked(producer, topic, [(str(key).encode(), value)], f"{view.what} not saved")
    view.wait_for(meta.partition, meta.offset, timeout_s=10)
