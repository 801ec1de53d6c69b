"""Put order events on the order-events topic, keyed by order id."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from typing import Any

from kafka import KafkaProducer
from kafka.errors import KafkaError
from pydantic import ValidationError

from disparo.errors import DisparoError, InvalidMessage, KafkaUnavailable
from disparo.kafka import make_producer
from disparo.schemas import OrderEvent, describe
from disparo.settings import KernelSettings, load
from disparo.topics import Topics


class PublishError(DisparoError):
    """An event could not be published; the message says why."""


def as_event(event: OrderEvent | Mapping[str, Any]) -> OrderEvent:
    """An OrderEvent from a model or a plain mapping, validated."""
    if isinstance(event, OrderEvent):
        return event
    try:
        return OrderEvent.model_validate(event)
    except ValidationError as exc:
        raise InvalidMessage(f"order event: {describe(exc)}") from None


class Publisher:
    """A durable publisher of order events (acks=all, idempotent)."""

    def __init__(
        self, settings: KernelSettings | None = None, producer: KafkaProducer | None = None
    ) -> None:
        self.settings = settings or load(KernelSettings)
        self.topic = Topics(self.settings.topic_prefix).order_events
        self._producer = producer or make_producer(self.settings, client_id="disparo-publisher")

    def send(self, event: OrderEvent | Mapping[str, Any]) -> Any:
        """Queue one event; returns the client's future of its record metadata."""
        checked = as_event(event)
        return self._producer.send(
            self.topic, key=checked.order_id.encode(), value=checked.model_dump_json().encode()
        )

    def publish(self, event: OrderEvent | Mapping[str, Any], timeout_s: float = 30.0) -> Any:
        """Publish one event and wait until Kafka has it; returns its record metadata."""
        return self.publish_many([event], timeout_s)[0]

    def publish_many(
        self, events: Iterable[OrderEvent | Mapping[str, Any]], timeout_s: float = 30.0
    ) -> list[Any]:
        """Publish events and wait until Kafka has all of them."""
        futures = [self.send(e) for e in events]
        self._producer.flush(timeout=timeout_s)
        try:
            return [f.get(timeout=timeout_s) for f in futures]
        except KafkaError as exc:
            raise KafkaUnavailable(f"event not published to {self.topic}: {exc}") from exc

    def close(self) -> None:
        self._producer.close(timeout=10)


_default: Publisher | None = None
_default_lock = threading.Lock()


def publish(event: OrderEvent | Mapping[str, Any], timeout_s: float = 30.0) -> Any:
    """Publish one event with a process-wide publisher configured from DISPARO_* settings."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Publisher()
    return _default.publish(event, timeout_s)
