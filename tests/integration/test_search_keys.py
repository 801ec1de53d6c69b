"""Search by the keys a support desk has: an account's search_keys find its dispatches by a
tracking code or an NF-e key as well as by order number, on the real stack."""

from __future__ import annotations

import httpx
import pytest

from tests.integration.conftest import Stack, bearer, order_event, signed_in_key
from tests.integration.receiver import Receiver

pytestmark = pytest.mark.integration
KEYS = ["payload.tracking_code", "payload.invoice.nfe_key"]


def test_a_tracking_code_or_an_nfe_key_finds_the_orders_dispatches(
    stack: Stack, receiver: Receiver
) -> None:
    acct = "loja-sk"
    made = stack.http.post(
        f"{stack.api}/api/v1/accounts", json={"id": acct, "name": "Loja", "search_keys": KEYS}
    )
    assert made.status_code == 201, made.text
    assert made.json()["search_keys"] == KEYS
    too_many = {"name": "Loja", "search_keys": [*KEYS, "payload.a", "payload.b"]}
    assert stack.http.put(f"{stack.api}/api/v1/accounts/{acct}", json=too_many).status_code == 422
    not_payload = {"name": "Loja", "search_keys": ["order_status"]}
    refused = stack.http.put(f"{stack.api}/api/v1/accounts/{acct}", json=not_payload)
    assert refused.status_code == 422
    assert "payload path" in refused.json()["error"]

    rule = stack.active_rule(
        name="sk", event_types=["*"], url=f"{receiver.url}/sk", account_id=acct
    )
    events = [
        order_event(
            f"SK-{i}",
            account_id=acct,
            payload={"tracking_code": f"BR{i:09d}XX", "invoice": {"nfe_key": f"3526{i:040d}"}},
        )
        for i in range(6)
    ]
    events.append(order_event("SK-0", "tracking.updated", account_id=acct, payload={}))
    stack.publisher.publish_many(events)
    stack.rows_eventually(7, rule_id=rule["id"])

    def search(value: str, **params: str) -> dict[str, object]:
        got = stack.http.get(f"{stack.api}/api/v1/dispatches", params={"key": value, **params})
        assert got.status_code == 200, got.text
        return got.json()

    by_code = search("BR000000003XX")
    assert {i["order_id"] for i in by_code["items"]} == {"SK-3"}  # type: ignore[union-attr]
    assert by_code["searched"] == {
        "key": "BR000000003XX",
        "orders": [{"order_id": "SK-3", "path": "payload.tracking_code"}],
    }
    # The key finds the order; the order's every dispatch follows (the scan carries no code).
    by_nfe = search(f"3526{0:040d}")
    assert sorted(i["event_type"] for i in by_nfe["items"]) == [  # type: ignore[union-attr]
        "order.dispatched",
        "tracking.updated",
    ]
    assert by_nfe["searched"]["orders"] == [  # type: ignore[index]
        {"order_id": "SK-0", "path": "payload.invoice.nfe_key"}
    ]
    by_order = search("SK-5")  # an order number is a key too
    assert [i["order_id"] for i in by_order["items"]] == ["SK-5"]  # type: ignore[union-attr]
    assert by_order["searched"]["orders"] == []  # type: ignore[index]
    assert search("nothing-like-it")["items"] == []
    summary = stack.http.get(
        f"{stack.api}/api/v1/dispatches/summary", params={"key": f"3526{0:040d}"}
    ).json()
    assert summary["total"] == 2
    both = stack.http.get(
        f"{stack.api}/api/v1/dispatches", params={"key": "SK-5", "order_id": "SK-5"}
    )
    assert both.status_code == 400
    assert "not both" in both.json()["error"]

    # Another account's key searches its own account only.
    other = httpx.Client(
        base_url=stack.api,
        headers=bearer(signed_in_key(stack, "other", "viewer", "other")),
        timeout=30,
    )
    assert other.get("/api/v1/dispatches", params={"key": "BR000000003XX"}).json()["items"] == []
    own = httpx.Client(
        base_url=stack.api, headers=bearer(signed_in_key(stack, "own", "viewer", acct)), timeout=30
    )
    mine = own.get("/api/v1/dispatches", params={"key": "BR000000003XX"}).json()
    assert [i["order_id"] for i in mine["items"]] == ["SK-3"]
