"""Malformed order events go to the dead-letter topic with a reason; good ones keep flowing."""

from __future__ import annotations

import json
import uuid

import pytest
from kafka import KafkaProducer

from disparo.schemas import now_utc
from tests.integration.conftest import Stack, read_all
from tests.integration.receiver import Receiver

pytestmark = pytest.mark.integration


def test_garbage_events_are_dead_lettered_with_reasons_and_good_ones_still_flow(
    stack: Stack, receiver: Receiver
) -> None:
    stack.active_rule(name="all", event_types=["*"], url=f"{receiver.url}/ok")
    bootstrap = stack.settings.kafka_bootstrap
    # A foreign producer, allowed to send what our own publish() would refuse.
    producer = KafkaProducer(
        bootstrap_servers=bootstrap, acks="all", max_request_size=8 * 1024 * 1024
    )
    topic = stack.topics.order_events
    missing_order = {
        "event_id": str(uuid.uuid4()),
        "event_type": "order.dispatched",
        "occurred_at": now_utc().isoformat(),
    }
    producer.send(topic, key=b"K1", value=b"{not json")
    producer.send(topic, key=b"K1", value=json.dumps(missing_order).encode())
    producer.send(topic, key=b"K1", value=b'{"event_id": 5}')
    wrong_types = {**missing_order, "order_id": ["not", "a", "string"], "payload": "text"}
    producer.send(topic, key=b"K1", value=json.dumps(wrong_types).encode())
    huge = {**missing_order, "order_id": "K1", "payload": {"blob": "x" * (5 * 1024 * 1024)}}
    producer.send(topic, key=b"K1", value=json.dumps(huge).encode())
    producer.flush()
    producer.close()
    stack.publisher.publish(
        {
            "event_id": str(uuid.uuid4()),
            "event_type": "order.dispatched",
            "order_id": "K1",
            "occurred_at": now_utc().isoformat(),
        }
    )

    [good] = receiver.wait_for("/ok", 1)
    assert json.loads(good.body)["data"]["order_id"] == "K1"
    dead = read_all(bootstrap, stack.topics.dead_letter, 5)
    assert len(dead) == 5
    reasons = [dict(r.headers)["disparo.reason"].decode() for r in dead]  # type: ignore[attr-defined]
    assert "Invalid JSON" in reasons[0]
    assert "order_id: Field required" in reasons[1]
    assert "event_id: UUID input should be a string" in reasons[2]
    assert "order_id: Input should be a valid string" in reasons[3]
    assert "payload: Input should be an object" in reasons[3]
    assert "5.2 MB is over the 1.0 MB limit" in reasons[4]
    assert len(dead[4].value) > 5 * 1024 * 1024  # type: ignore[attr-defined]
    first = dead[0]
    assert first.value == b"{not json"  # type: ignore[attr-defined]
    headers = dict(first.headers)  # type: ignore[attr-defined]
    assert headers["disparo.stage"] == b"dispatcher"
    assert headers["disparo.source.topic"] == topic.encode()
    assert len(receiver.on("/ok")) == 1


def test_invalid_rule_records_are_dead_lettered_with_reasons(stack: Stack) -> None:
    bootstrap = stack.settings.kafka_bootstrap
    # Written past the API (which refuses them), as a foreign tool on the rules topic could.
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    producer.send(stack.topics.rules, key=b"901", value=b"{not json")
    producer.send(stack.topics.rules, key=b"902", value=b'{"id": 902}')
    producer.flush()
    producer.close()

    dead = read_all(bootstrap, stack.topics.dead_letter, 2)
    assert [r.key for r in dead] == [b"901", b"902"]  # type: ignore[attr-defined]
    headers = [dict(r.headers) for r in dead]  # type: ignore[attr-defined]
    assert all(h["disparo.stage"] == b"dispatcher" for h in headers)
    assert all(h["disparo.source.topic"] == stack.topics.rules.encode() for h in headers)
    reasons = [h["disparo.reason"].decode() for h in headers]
    assert reasons[0].startswith("rule: ")
    assert "Expecting property name" in reasons[0]  # json.loads says what it expected
    assert reasons[1].startswith("rule: ")
    assert "Field required" in reasons[1]
    assert dead[0].value == b"{not json"  # type: ignore[attr-defined]
