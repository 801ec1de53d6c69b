"""A producer that keeps what it is sent, for unit tests of the control plane's writers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kafka.errors import KafkaTimeoutError

from disparo.schemas import AttemptOutcome, DispatchJob


@dataclass(frozen=True)
class Sent:
    topic: str
    key: bytes | None
    value: bytes | None


@dataclass
class _Acked:
    partition: int
    offset: int

    def get(self, timeout: float | None = None) -> _Acked:
        return self


@dataclass
class FakeProducer:
    """KafkaProducer's `send` and `flush`: each record acked at once (or refused when down)."""

    down: bool = False
    sent: list[Sent] = field(default_factory=list)

    def send(self, topic: str, key: bytes | None = None, value: bytes | None = None) -> Any:
        if self.down:
            raise KafkaTimeoutError("no broker")
        offset = len(self.on(topic))  # one partition per topic
        self.sent.append(Sent(topic, key, value))
        return _Acked(0, offset)

    def flush(self, timeout: float | None = None) -> None:
        return None

    def on(self, topic: str) -> list[Sent]:
        return [s for s in self.sent if s.topic == topic]

    def jobs(self, topic: str) -> list[DispatchJob]:
        return [DispatchJob.model_validate_json(s.value or b"") for s in self.on(topic)]

    def outcomes(self, topic: str) -> list[AttemptOutcome]:
        return [AttemptOutcome.model_validate_json(s.value or b"") for s in self.on(topic)]
