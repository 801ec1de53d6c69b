"""A parked endpoint: its next jobs wait in a retry tier, go out once it is back, others flow."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from kafka import KafkaProducer

from disparo.parking import ParkedEndpoint, endpoint_key
from disparo.schemas import DispatchJob
from tests.integration.conftest import (
    Stack,
    dispatch_ids,
    eventually,
    every_record,
    order_event,
    running_stack,
)
from tests.integration.receiver import Receiver

pytestmark = pytest.mark.integration


def _parks(stack: Stack) -> dict[str, ParkedEndpoint | None]:
    """The latest parked-endpoints record of each endpoint (None: a tombstone)."""
    latest: dict[str, ParkedEndpoint | None] = {}
    for record in every_record(stack.settings.kafka_bootstrap, stack.topics.parked_endpoints):
        value = record.value
        latest[record.key.decode()] = (
            ParkedEndpoint.model_validate_json(value) if value is not None else None
        )
    return latest


def _jobs_in(stack: Stack, topics: list[str], rule_id: int) -> list[DispatchJob]:
    """The jobs of one rule in these topics."""
    records = [r for t in topics for r in every_record(stack.settings.kafka_bootstrap, t)]
    jobs = [DispatchJob.model_validate_json(r.value) for r in records]
    return [j for j in jobs if j.rule.rule_id == rule_id]


def _ok_ids(receiver: Receiver) -> set[str]:
    return {r.webhook_id for r in receiver.on("/in") if r.status == 200}


def test_a_parked_endpoint_s_jobs_wait_in_a_retry_tier_and_go_out_once_it_is_back(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    down, healthy = Receiver(), Receiver()
    try:
        with running_stack(kafka_bootstrap, tmp_path, DISPARO_BREAKER_OPEN_S="10") as stack:
            down.take_down("/in")  # 503 until brought up: five of them open its circuit
            rule_id = stack.active_rule(
                name="down", event_types=["*"], url=f"{down.url}/in", max_attempts=20
            )["id"]
            stack.active_rule(name="fine", event_types=["*"], url=f"{healthy.url}/ok")
            endpoint = endpoint_key("default", down.url)
            first = [order_event(f"PARK-A-{i}") for i in range(20)]
            stack.publisher.publish_many(first)
            healthy.wait_for("/ok", 20, timeout_s=30)
            # Their retries meet the open circuit: deferred, and the endpoint parked.
            park = eventually(lambda: _parks(stack).get(endpoint), 30, "the endpoint's park")
            assert park.reason == "circuit_open"

            later = [order_event(f"PARK-B-{i}") for i in range(10)]
            stack.publisher.publish_many(later)
            assert len(healthy.wait_for("/ok", 30, timeout_s=30)) == 30  # the others flow on
            later_ids = dispatch_ids(later, rule_id)
            retry_topics = [stack.topics.retry(t.name) for t in stack.settings.retry_tiers]
            detoured = [
                j for j in _jobs_in(stack, retry_topics, rule_id) if j.dispatch_id in later_ids
            ]
            assert {j.dispatch_id for j in detoured} == later_ids
            assert all(j.attempt == 1 and j.not_before is not None for j in detoured)
            ordinary = _jobs_in(stack, [stack.topics.dispatch_jobs], rule_id)
            assert {j.dispatch_id for j in ordinary} == dispatch_ids(first, rule_id)
            metrics = httpx.get(f"{stack.dispatcher}/metrics", timeout=5).text
            assert "disparo_parked_jobs_total 10.0" in metrics

            down.bring_up("/in")
            # The circuit's next probe succeeds: every dispatch of the rule goes out, the
            # endpoint is unparked, and each dispatch ends in one successful final row.
            all_ids = later_ids | dispatch_ids(first, rule_id)
            eventually(lambda: all_ids <= _ok_ids(down), 60, "every dispatch at the endpoint")
            eventually(lambda: _parks(stack).get(endpoint, 0) is None, 30, "the unpark")
            stack.wait_all_final(all_ids, 30)
    finally:
        down.close()
        healthy.close()


def test_a_parked_endpoints_record_that_is_not_one_leaves_the_dispatcher_routing(
    stack: Stack, receiver: Receiver
) -> None:
    producer = KafkaProducer(bootstrap_servers=stack.settings.bootstrap_servers)
    try:
        bad = b'{"endpoint": "x", "until": "not a date"}'
        producer.send(stack.topics.parked_endpoints, key=b"x", value=bad).get(30)
    finally:
        producer.close()
    stack.active_rule(name="after-bad-park", event_types=["*"], url=f"{receiver.url}/ok")
    stack.publisher.publish_many([order_event(f"BADPARK-{i}") for i in range(3)])
    assert len(receiver.wait_for("/ok", 3, timeout_s=30)) == 3
