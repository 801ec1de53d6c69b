"""End to end on the real broker and chdb: publish -> dispatcher -> worker -> receiver -> API."""

from __future__ import annotations

import json
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook

from disparo.schemas import generate_secret
from tests.integration.conftest import Stack, eventually, order_event
from tests.integration.receiver import Receiver

pytestmark = pytest.mark.integration


def test_published_event_reaches_receiver_signed_and_its_attempt_is_served_by_the_api(
    stack: Stack, receiver: Receiver
) -> None:
    secret = generate_secret()
    rule = stack.active_rule(
        name="orders",
        event_types=["order.dispatched"],
        url=f"{receiver.url}/ok",
        secret=secret,
        headers={"x-tenant": "t1"},
    )
    event = order_event("ORD-E2E-1")
    stack.publisher.publish(event)

    [got] = receiver.wait_for("/ok", 1, timeout_s=30)
    body = Webhook(secret).verify(got.body, got.headers)
    assert body["type"] == "order.dispatched"
    assert body["data"]["event_id"] == event["event_id"]
    assert body["data"]["order_id"] == "ORD-E2E-1"
    assert got.headers["x-tenant"] == "t1"

    rows = eventually(lambda: stack.dispatches(order_id="ORD-E2E-1"), 30, "the attempt row")
    assert len(rows) == 1
    row = rows[0]
    assert row["dispatch_id"] == got.headers["webhook-id"]
    assert (row["status"], row["http_status"], row["attempt"]) == ("success", 200, 1)
    assert (row["rule_id"], row["event_type"], row["order_status"]) == (
        rule["id"],
        "order.dispatched",
        "dispatched",
    )
    assert row["url"] == f"{receiver.url}/ok"
    assert row["manual"] is False
    counts = stack.http.get(
        f"{stack.api}/api/v1/dispatches/summary", params={"order_id": "ORD-E2E-1"}, timeout=10
    ).json()
    assert counts == {
        "total": 1, "failed": 0, "failure_rate": 0.0, "held": 0, "superseded": 0, "regressed": 0,
    }  # fmt: skip
    detail = stack.http.get(
        f"{stack.api}/api/v1/dispatches/{row['dispatch_id']}", timeout=10
    ).json()
    assert json.loads(detail["attempts"][0]["request_excerpt"])["data"]["order_id"] == "ORD-E2E-1"


def test_failing_endpoint_is_recorded_as_failure_and_counted_in_the_failure_rate(
    stack: Stack, receiver: Receiver
) -> None:
    stack.active_rule(name="ok", event_types=["*"], url=f"{receiver.url}/ok")
    bad = stack.create_rule(
        name="bad", event_types=["tracking.updated"], url=f"{receiver.url}/fail"
    )
    stack.wait_rule_applied(bad["id"], active=True)
    stack.publisher.publish_many(
        [
            order_event("ORD-F-1", "tracking.updated"),
            order_event("ORD-F-2", "order.dispatched"),
        ]
    )
    receiver.wait_for("/fail", 1)
    receiver.wait_for("/ok", 2)

    def summary() -> dict[str, Any] | None:
        got: dict[str, Any] = stack.http.get(
            f"{stack.api}/api/v1/dispatches/summary", timeout=10
        ).json()
        return got if got["total"] == 3 else None

    assert eventually(summary, 30, "3 attempts") == {
        "total": 3,
        "failed": 1,
        "failure_rate": 0.3333,
        "held": 0,
        "superseded": 0,
        "regressed": 0,
    }
    [failed] = stack.dispatches(status="failure")
    assert (failed["order_id"], failed["http_status"], failed["error"]) == (
        "ORD-F-1",
        503,
        "HTTP 503",
    )
    assert failed["rule_id"] == bad["id"]


def test_deactivated_rule_gets_no_dispatches_for_later_events(
    stack: Stack, receiver: Receiver
) -> None:
    watched = stack.create_rule(
        name="watched", event_types=["order.dispatched"], url=f"{receiver.url}/ok"
    )
    stack.active_rule(
        name="witness", event_types=["order.dispatched"], url=f"{receiver.url}/ok-witness"
    )
    stack.publisher.publish(order_event("ORD-D-1"))
    receiver.wait_for("/ok", 1)

    update = {k: watched[k] for k in ("name", "event_types", "url", "timeout_s", "max_attempts")}
    response = stack.http.put(
        f"{stack.api}/api/v1/rules/{watched['id']}", json={**update, "active": False}, timeout=30
    )
    assert response.status_code == 200, response.text
    assert response.json()["active"] is False
    stack.wait_rule_applied(watched["id"], active=False)

    later = [order_event(f"ORD-D-{i}") for i in range(2, 7)]
    stack.publisher.publish_many(later)
    # The witness rule proves the later events were routed; the watched rule saw none of them.
    witnessed = receiver.wait_for("/ok-witness", 6)
    later_ids = {e["event_id"] for e in later}
    assert later_ids <= {json.loads(r.body)["data"]["event_id"] for r in witnessed}
    assert len(receiver.on("/ok")) == 1
    assert json.loads(receiver.on("/ok")[0].body)["data"]["order_id"] == "ORD-D-1"
