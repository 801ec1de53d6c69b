"""Failure paths on the real stack: retries through delay tiers, final failures, no retry."""

from __future__ import annotations

import json
from typing import Any

import pytest

from disparo.schemas import generate_secret
from tests.integration.conftest import Stack, order_event
from tests.integration.receiver import Receiver

pytestmark = pytest.mark.integration


def _attempts_of(stack: Stack, order_id: str, count: int) -> list[dict[str, Any]]:
    return sorted(stack.rows_eventually(count, order_id=order_id), key=lambda r: r["attempt"])


def test_endpoint_failing_twice_with_503_then_succeeding_gets_three_attempts_ending_in_success(
    stack: Stack, receiver: Receiver
) -> None:
    stack.active_rule(
        name="flaky", event_types=["*"], url=f"{receiver.url}/flaky/2", max_attempts=5
    )
    stack.publisher.publish(order_event("FLAKY-1"))
    rows = _attempts_of(stack, "FLAKY-1", 3)
    assert [(r["attempt"], r["status"], r["http_status"]) for r in rows] == [
        (1, "failure", 503),
        (2, "failure", 503),
        (3, "success", 200),
    ]
    assert [r["final"] for r in rows] == [False, False, True]
    assert [r["retry_tier"] for r in rows] == ["1s", "2s", ""]
    assert len({r["dispatch_id"] for r in rows}) == 1
    assert receiver.webhook_ids("/flaky/2") == {rows[0]["dispatch_id"]}
    assert len(receiver.on("/flaky/2")) == 3


def test_timeouts_are_classified_and_retried_until_max_attempts_then_final(
    stack: Stack, receiver: Receiver
) -> None:
    stack.active_rule(
        name="slow", event_types=["*"], url=f"{receiver.url}/slow", timeout_s=0.5, max_attempts=2
    )
    stack.publisher.publish(order_event("SLOW-1"))
    rows = _attempts_of(stack, "SLOW-1", 2)
    assert [(r["attempt"], r["reason"], r["final"]) for r in rows] == [
        (1, "timeout", False),
        (2, "timeout", True),
    ]
    assert all(r["http_status"] is None for r in rows)
    assert "0.5s" in rows[0]["error"]


def test_410_gone_is_final_after_one_attempt(stack: Stack, receiver: Receiver) -> None:
    gone = stack.active_rule(
        name="gone", event_types=["*"], url=f"{receiver.url}/gone", max_attempts=5
    )
    witness = stack.create_rule(
        name="witness", event_types=["*"], url=f"{receiver.url}/flaky/1", max_attempts=5
    )
    stack.wait_rule_applied(witness["id"], active=True)
    stack.publisher.publish(order_event("GONE-1"))
    # The witness's retry (tier 1s) proves the retry path ran past the 410's moment.
    receiver.wait_for("/flaky/1", 2, timeout_s=30)
    rows = [r for r in _attempts_of(stack, "GONE-1", 3) if r["rule_id"] == gone["id"]]
    assert [(r["attempt"], r["http_status"], r["reason"], r["final"]) for r in rows] == [
        (1, 410, "http_4xx", True)
    ]
    assert len(receiver.on("/gone")) == 1


def test_worker_logs_are_json_with_delivery_fields_and_never_hold_the_secret(
    stack: Stack, receiver: Receiver
) -> None:
    secret = generate_secret()
    rule = stack.active_rule(
        name="logged", event_types=["*"], url=f"{receiver.url}/fail", max_attempts=1, secret=secret
    )
    stack.publisher.publish(order_event("LOG-1"))
    [row] = _attempts_of(stack, "LOG-1", 1)
    lines = [
        json.loads(line)
        for line in stack.log_tail("worker", 200_000).splitlines()
        if line.startswith("{")
    ]
    failures = [line for line in lines if line.get("dispatch_id") == row["dispatch_id"]]
    assert failures
    assert failures[0]["order_id"] == "LOG-1"
    assert failures[0]["rule_id"] == rule["id"]
    assert failures[0]["reason"] == "http_5xx"
    secret_key = secret.removeprefix("whsec_")
    for name in stack.names:
        assert secret_key not in stack.log_tail(name, 1_000_000), name
