"""The status guard on the real stack: a customer never receives an older order status than
one it already got (design: "Order lifecycle and status guard")."""

from __future__ import annotations

import os
import signal
import uuid
from typing import Any

import httpx
import pytest
from standardwebhooks.webhooks import Webhook

from consumers.lanes import LaneKey
from disparo.schemas import dispatch_id_for, generate_secret
from tests.integration.conftest import DISPARO, Stack, eventually, order_event, stored_lane
from tests.integration.receiver import Receiver

pytestmark = pytest.mark.integration

# `returned` ranks below `delivered`: reaching it from `delivered` is the allowed step back.
LIFECYCLE = {
    "statuses": ["dispatched", "in_transit", "returned", "delivered"],
    "allowed_back": [["delivered", "returned"]],
}


def set_lifecycle(stack: Stack, lifecycle: dict[str, Any]) -> None:
    saved = stack.http.put(
        f"{stack.api}/api/v1/accounts/default", json={"name": "default", "lifecycle": lifecycle}
    )
    assert saved.status_code == 200, saved.text
    assert saved.json()["lifecycle"] == lifecycle


def guarded_rule(stack: Stack, receiver: Receiver, secret: str, **fields: Any) -> dict[str, Any]:
    return stack.active_rule(
        name=fields.pop("name", "guarded"),
        event_types=["*"],
        url=f"{receiver.url}/ok",
        secret=secret,
        status_guard="forward_only",
        **fields,
    )


def scan(order_id: str, status: str, carrier: str = "acme") -> dict[str, Any]:
    return order_event(
        order_id, "tracking.updated", order_status=status, payload={"carrier": carrier}
    )


def dispatch_of(event: dict[str, Any], rule: dict[str, Any]) -> str:
    return dispatch_id_for(uuid.UUID(event["event_id"]), rule["id"])


def received(receiver: Receiver, secret: str, rule: dict[str, Any]) -> list[tuple[str, int]]:
    """(order status, HTTP answer) of every request the rule's webhooks made, in arrival
    order, each signature verified."""
    got = []
    for request in receiver.requests:
        data = Webhook(secret).verify(request.body, request.headers)["data"]
        if dispatch_id_for(uuid.UUID(data["event_id"]), rule["id"]) == request.webhook_id:
            got.append((data["order_status"], request.status))
    return got


def row_of(stack: Stack, dispatch_id: str, status: str) -> dict[str, Any]:
    def found() -> dict[str, Any] | None:
        rows = [r for r in stack.all_rows(status=status) if r["dispatch_id"] == dispatch_id]
        return rows[-1] if rows else None

    row: dict[str, Any] = eventually(found, 45, f"a {status} row of {dispatch_id}")
    return row


def test_an_older_status_published_later_is_regressed_an_allowed_step_back_is_sent_and_a_manual_resend_still_sends(  # noqa: E501
    stack: Stack, receiver: Receiver
) -> None:
    set_lifecycle(stack, LIFECYCLE)
    secret = generate_secret()
    rule = guarded_rule(stack, receiver, secret)
    events = {
        "dispatched": scan("G-1", "dispatched"),
        "delivered": scan("G-1", "delivered"),
        "in_transit": scan("G-1", "in_transit", carrier="late-scans"),
        "returned": scan("G-1", "returned"),
    }
    ids = {status: dispatch_of(e, rule) for status, e in events.items()}
    for status in ("dispatched", "delivered"):  # one at a time: each 2xx before the next
        stack.publisher.publish(events[status])
        row_of(stack, ids[status], "success")
    stack.publisher.publish(events["in_transit"])
    regressed = row_of(stack, ids["in_transit"], "regressed")
    stack.publisher.publish(events["returned"])
    row_of(stack, ids["returned"], "success")

    assert received(receiver, secret, rule) == [
        ("dispatched", 200), ("delivered", 200), ("returned", 200),
    ]  # fmt: skip
    assert (regressed["reason"], regressed["http_status"], regressed["final"]) == (
        "after delivered", None, True,
    )  # fmt: skip
    summary = stack.http.get(f"{stack.api}/api/v1/dispatches/summary").json()
    assert (summary["total"], summary["failed"], summary["regressed"]) == (3, 0, 1)
    breakdown = stack.http.get(
        f"{stack.api}/api/v1/dispatches/breakdown",
        params={"by": "regressions", "dimension": "payload.carrier"},
    ).json()
    assert breakdown["regressed"] == 1
    assert breakdown["by_value"] == [{"value": "late-scans", "count": 1}]
    assert breakdown["by_after"] == [{"status": "delivered", "count": 1}]
    listed = stack.dispatches(status="regressed")
    assert [r["dispatch_id"] for r in listed] == [ids["in_transit"]]
    metrics = httpx.get(f"{stack.worker}/metrics", timeout=10).text
    assert f'disparo_status_regressions_total{{rule_id="{rule["id"]}"}} 1.0' in metrics

    resent = stack.http.post(f"{stack.api}/api/v1/resend", json={"dispatch_id": ids["in_transit"]})
    assert resent.status_code == 202, resent.text
    manual = row_of(stack, ids["in_transit"], "success")
    assert (manual["manual"], manual["attempt"]) == (True, 2)
    assert received(receiver, secret, rule)[-1] == ("in_transit", 200)


def test_a_regression_behind_a_retried_newer_status_ends_regressed_with_per_order_and_is_sent_without(  # noqa: E501
    stack: Stack, receiver: Receiver
) -> None:
    set_lifecycle(stack, LIFECYCLE)
    secret = generate_secret()
    ordered = guarded_rule(stack, receiver, secret, name="ordered", ordering="per_order")
    unordered = guarded_rule(stack, receiver, secret, name="unordered")
    dispatched, delivered, in_transit = (
        scan("G-2", s) for s in ("dispatched", "delivered", "in_transit")
    )
    stack.publisher.publish(dispatched)
    for rule in (ordered, unordered):
        row_of(stack, dispatch_of(dispatched, rule), "success")
        receiver.plan(dispatch_of(delivered, rule), [503, 503, 503])
    stack.publisher.publish(delivered)
    for rule in (ordered, unordered):  # both rules' `delivered` failed once: now in retry
        row_of(stack, dispatch_of(delivered, rule), "failure")
    stack.publisher.publish(in_transit)

    # per_order: in_transit waits behind delivered, then ends regressed once it succeeds.
    row_of(stack, dispatch_of(delivered, ordered), "success")
    late = row_of(stack, dispatch_of(in_transit, ordered), "regressed")
    assert late["reason"] == "after delivered"
    assert received(receiver, secret, ordered) == [
        ("dispatched", 200), *[("delivered", 503)] * 3, ("delivered", 200),
    ]  # fmt: skip
    # Without it: nothing above in_transit was delivered yet when its turn came: it is sent.
    row_of(stack, dispatch_of(delivered, unordered), "success")
    sent = row_of(stack, dispatch_of(in_transit, unordered), "success")
    got = received(receiver, secret, unordered)
    assert sorted(got) == sorted(
        [("dispatched", 200), *[("delivered", 503)] * 3, ("delivered", 200), ("in_transit", 200)]
    )  # fmt: skip
    assert got.index(("in_transit", 200)) < got.index(("delivered", 200))
    assert sent["attempt"] == 1


def customer_status(stack: Stack, key: LaneKey) -> str | None:
    """The status a lane holds for its customer, as the order-lanes topic holds it now."""
    lane = stored_lane(stack, key)
    return None if lane is None else lane.customer_status


def test_a_worker_killed_after_the_newer_status_was_delivered_still_regresses_the_older_one(
    stack: Stack, receiver: Receiver
) -> None:
    set_lifecycle(stack, LIFECYCLE)
    secret = generate_secret()
    rule = guarded_rule(stack, receiver, secret)
    delivered, in_transit = scan("G-3", "delivered"), scan("G-3", "in_transit")
    stack.publisher.publish(delivered)
    row_of(stack, dispatch_of(delivered, rule), "success")
    key = (rule["id"], "G-3")
    eventually(lambda: customer_status(stack, key) == "delivered", 30, "the lane written")
    pid = stack.table.pid("worker")
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    stack.table.start("worker", [DISPARO, "worker"], stack.env)
    stack.table.wait_http("worker", f"{stack.worker}/readyz", 90)

    stack.publisher.publish(in_transit)
    late = row_of(stack, dispatch_of(in_transit, rule), "regressed")
    assert late["reason"] == "after delivered"
    assert received(receiver, secret, rule) == [("delivered", 200)]
