"""Manual resends on the real stack: same webhook-id, marked manual, bulk by filter."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.integration.conftest import Stack, order_event
from tests.integration.receiver import Receiver

pytestmark = pytest.mark.integration


def _point_rule_at(stack: Stack, rule: dict[str, Any], url: str) -> None:
    fields = {k: rule[k] for k in ("name", "event_types", "timeout_s", "max_attempts")}
    response = stack.http.put(
        f"{stack.api}/api/v1/rules/{rule['id']}", json={**fields, "url": url}, timeout=30
    )
    assert response.status_code == 200, response.text
    stack.wait_rule_applied(rule["id"], active=True)


def test_resend_by_dispatch_id_is_a_manual_attempt_with_the_same_webhook_id(
    stack: Stack, receiver: Receiver
) -> None:
    rule = stack.active_rule(
        name="r", event_types=["*"], url=f"{receiver.url}/fail", max_attempts=1
    )
    stack.publisher.publish(order_event("RS-1"))
    [failed] = stack.rows_eventually(1, order_id="RS-1")
    assert (failed["status"], failed["final"]) == ("failure", True)

    _point_rule_at(stack, rule, f"{receiver.url}/ok")  # the customer fixed the endpoint
    response = stack.http.post(
        f"{stack.api}/api/v1/resend", json={"dispatch_id": failed["dispatch_id"]}, timeout=30
    )
    assert response.status_code == 202, response.text
    assert response.json() == {"queued": 1, "dispatch_ids": [failed["dispatch_id"]]}

    [resent] = receiver.wait_for("/ok", 1)
    assert resent.headers["webhook-id"] == failed["dispatch_id"]
    rows = sorted(stack.rows_eventually(2, order_id="RS-1"), key=lambda r: r["attempt"])
    assert [(r["attempt"], r["status"], r["manual"]) for r in rows] == [
        (1, "failure", False),
        (2, "success", True),
    ]


def test_resend_by_order_narrows_by_event_type(stack: Stack, receiver: Receiver) -> None:
    stack.active_rule(name="r", event_types=["*"], url=f"{receiver.url}/ok")
    stack.publisher.publish_many(
        [order_event("RS-2", "order.dispatched"), order_event("RS-2", "tracking.updated")]
    )
    stack.rows_eventually(2, order_id="RS-2")
    response = stack.http.post(
        f"{stack.api}/api/v1/resend",
        timeout=30,
        json={"order_id": "RS-2", "event_type": "tracking.updated"},
    )
    assert response.status_code == 202, response.text
    assert response.json()["queued"] == 1
    rows = stack.rows_eventually(3, order_id="RS-2")
    manual = [r for r in rows if r["manual"]]
    assert [(r["event_type"], r["attempt"]) for r in manual] == [("tracking.updated", 2)]


def test_bulk_resend_queues_only_final_failures_matching_the_filter(
    stack: Stack, receiver: Receiver
) -> None:
    failing = stack.active_rule(
        name="f", event_types=["*"], url=f"{receiver.url}/fail", max_attempts=1
    )
    healthy = stack.create_rule(name="h", event_types=["*"], url=f"{receiver.url}/ok")
    stack.wait_rule_applied(healthy["id"], active=True)
    stack.publisher.publish_many([order_event(f"BULK-{i}") for i in range(4)])
    stack.rows_eventually(8)
    response = stack.http.post(
        f"{stack.api}/api/v1/resend/bulk",
        timeout=30,
        json={"rule_id": failing["id"], "reason": "http_5xx"},
    )
    assert response.status_code == 202, response.text
    assert response.json()["queued"] == 4
    assert uuid.UUID(response.json()["request_id"])
    rows = stack.rows_eventually(12)
    manual = [r for r in rows if r["manual"]]
    assert len(manual) == 4
    assert {r["rule_id"] for r in manual} == {failing["id"]}
    none_left = stack.http.post(
        f"{stack.api}/api/v1/resend/bulk", timeout=30, json={"rule_id": healthy["id"]}
    )
    assert none_left.json()["queued"] == 0
    audit = stack.http.get(f"{stack.api}/api/v1/audit", params={"action": "resend.bulk"}).json()
    entries = sorted(audit["items"], key=lambda e: e["at"])
    assert [(e["actor"], e["details"]["queued"]) for e in entries] == [
        ("test-admin", 4),
        ("test-admin", 0),
    ]
    assert entries[0]["target"] == response.json()["request_id"]
    assert entries[0]["details"]["request"] == {"rule_id": failing["id"], "reason": "http_5xx"}


def test_bad_resend_requests_get_a_4xx_that_says_what_to_send(stack: Stack) -> None:
    cases = [
        ({}, 422, "either 'dispatch_id'"),
        ({"dispatch_id": "a", "order_id": "b"}, 422, "either 'dispatch_id'"),
        ({"dispatch_id": "a", "rule_id": 3}, 422, "narrow an 'order_id'"),
        ({"dispatch_id": "msg_unknown"}, 404, "no dispatch found"),
        ({"order_id": "NOPE"}, 404, "no dispatch found"),
        ({"order_id": "NOPE", "rule_id": 2**60}, 422, "rule_id"),  # no rule id is that big
    ]
    for body, status, needle in cases:
        response = stack.http.post(f"{stack.api}/api/v1/resend", json=body, timeout=30)
        assert response.status_code == status, (body, response.text)
        assert needle in response.json()["error"], (body, response.text)
    bulk = stack.http.post(
        f"{stack.api}/api/v1/resend/bulk", json={"from": "2020-01-01T00:00:00Z"}, timeout=30
    )
    assert bulk.status_code == 400
    assert "30 days" in bulk.json()["error"]
