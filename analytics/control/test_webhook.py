"""A test webhook: one job sent now through the workers, its outcome read back from Kafka.

The test goes the way every webhook goes (resend topic, a worker, its target checks, the
breaker, signing, the outcomes topic, the history), so what it reports is what a real
dispatch would meet; only the answer is waited for here, on the outcomes topic.
"""

from __future__ import annotations

import time
import uuid

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from analytics.errors import KafkaRefused
from disparo.consumer import plain_consumer
from disparo.errors import InvalidMessage, KafkaUnavailable
from disparo.matching import ALL_EVENT_TYPES
from disparo.schemas import (
    TEST_EVENT_TYPE,
    AttemptOutcome,
    DispatchJob,
    OrderEvent,
    Rule,
    now_utc,
    parse_outcome,
)
from disparo.settings import KernelSettings


def sample_event(rule: Rule) -> OrderEvent:
    """An event of the rule's first event type, marked as a test in its payload."""
    kind = rule.event_types[0]
    return OrderEvent(
        event_id=uuid.uuid4(),
        event_type=TEST_EVENT_TYPE if kind == ALL_EVENT_TYPES else kind,
        order_id=f"test-{uuid.uuid4().hex[:8]}",
        order_status="test",
        occurred_at=now_utc(),
        payload={"test": True, "note": f"a test webhook of disparo rule {rule.id}"},
        account_id=rule.account_id,
    )


class OutcomeWatch:
    """Reads the outcomes topic from its current end, for the outcome of one attempt."""

    def __init__(self, settings: KernelSettings, topic: str) -> None:
        try:
            self.consumer: KafkaConsumer = plain_consumer(settings, "disparo-test-webhook")
            partitions = self.consumer.partitions_for_topic(topic) or set()
            tps = [TopicPartition(topic, p) for p in sorted(partitions)]
            if not tps:
                raise KafkaRefused(f"topic {topic} has no partitions yet; is Kafka set up?")
            self.consumer.assign(tps)
            self.consumer.seek_to_end(*tps)
            for tp in tps:
                self.consumer.position(tp)  # fixes the start before the job is sent
        except (KafkaError, KafkaUnavailable) as exc:
            raise KafkaRefused(f"cannot read {topic}, Kafka is unavailable: {exc}") from exc

    def wait_for(self, job: DispatchJob, timeout_s: float) -> AttemptOutcome | None:
        """The outcome of the job's attempt, or None if none came within `timeout_s`."""
        key = job.dispatch_id.encode()  # outcomes are keyed by dispatch id
        deadline = time.monotonic() + timeout_s
        while (left := deadline - time.monotonic()) > 0:
            polled = self.consumer.poll(timeout_ms=int(min(left, 0.5) * 1000) + 1)
            for records in polled.values():
                for record in records:
                    found = _outcome(record.value) if record.key == key else None
                    if found is not None and found.attempt_id == job.attempt_id:
                        return found
        return None

    def close(self) -> None:
        self.consumer.close()


def _outcome(raw: bytes | None) -> AttemptOutcome | None:
    try:
        return parse_outcome(raw)
    except InvalidMessage:
        return None  # the sink dead-letters it; not the one waited for
