"""Erasing an order's personal data on the real stack: bodies, payloads and search values
gone, ids, statuses, times and codes kept, audited, and no resend of what is gone."""

from __future__ import annotations

import httpx
import pytest

from tests.integration.conftest import (
    Stack,
    bearer,
    eventually,
    order_event,
    signed_in_key,
)
from tests.integration.receiver import Receiver

pytestmark = pytest.mark.integration
ACCT = "lgpd"


def _client(stack: Stack, name: str, role: str, account: str | None) -> httpx.Client:
    key = signed_in_key(stack, name, role, account)  # type: ignore[arg-type]
    return httpx.Client(base_url=stack.api, headers=bearer(key), timeout=60)


def test_an_expunged_order_keeps_its_history_but_not_its_personal_data(
    stack: Stack, receiver: Receiver
) -> None:
    made = stack.http.post(
        f"{stack.api}/api/v1/accounts",
        json={"id": ACCT, "name": "LGPD", "search_keys": ["payload.cpf"]},
    )
    assert made.status_code == 201, made.text
    rule = stack.active_rule(name="p", event_types=["*"], url=f"{receiver.url}/ok", account_id=ACCT)
    maria = {"name": "Maria Souza", "cpf": "123.456.789-09", "address": "Rua A, 1"}
    joao = {"name": "João Lima", "cpf": "987.654.321-00"}
    events = [
        order_event("EXP-1", account_id=ACCT, payload=maria),
        order_event("EXP-1", "tracking.updated", account_id=ACCT, payload=maria),
        order_event("EXP-2", account_id=ACCT, payload=joao),
    ]
    stack.publisher.publish_many(events)
    rows = stack.rows_eventually(3, rule_id=rule["id"])
    before = stack.http.get(f"{stack.api}/api/v1/dispatches/summary").json()
    eventually(lambda: len(_story(stack, "EXP-1")["events"]) == 2, 30, "EXP-1's events stored")
    found = stack.http.get(f"{stack.api}/api/v1/dispatches", params={"key": "123.456.789-09"})
    assert {i["order_id"] for i in found.json()["items"]} == {"EXP-1"}

    operator = _client(stack, "op", "operator", ACCT)
    assert operator.post("/api/v1/orders/EXP-1/expunge").status_code == 403
    other = _client(stack, "other-admin", "admin", "other")
    assert other.post("/api/v1/orders/EXP-1/expunge").status_code == 404
    admin = _client(stack, "lgpd-admin", "admin", ACCT)
    done = admin.post("/api/v1/orders/EXP-1/expunge")
    assert done.status_code == 200, done.text
    assert done.json() == {"order_id": "EXP-1", "expunged_attempts": 2, "expunged_events": 2}

    # The history still adds up: the same rows, statuses, codes and times.
    after = stack.http.get(f"{stack.api}/api/v1/dispatches/summary").json()
    assert after == before
    listed = stack.http.get(f"{stack.api}/api/v1/dispatches", params={"order_id": "EXP-1"})
    expected = {
        (r["attempt_id"], r["status"], r["http_status"], r["dispatched_at"])
        for r in rows
        if r["order_id"] == "EXP-1"
    }
    shown = {
        (r["attempt_id"], r["status"], r["http_status"], r["dispatched_at"])
        for r in listed.json()["items"]
    }
    assert shown == expected
    for item in listed.json()["items"]:
        detail = stack.http.get(f"{stack.api}/api/v1/dispatches/{item['dispatch_id']}").json()
        for attempt in detail["attempts"]:
            assert attempt["request_excerpt"] == "expunged"
            assert attempt["response_excerpt"] == "expunged"
    story = _story(stack, "EXP-1")
    assert [e["payload"] for e in story["events"]] == [None, None]
    assert all(e["expunged"] for e in story["events"])
    assert {e["event_type"] for e in story["events"]} == {"order.dispatched", "tracking.updated"}
    assert "Maria" not in str(story)
    gone = stack.http.get(f"{stack.api}/api/v1/dispatches", params={"key": "123.456.789-09"})
    assert gone.json()["searched"]["orders"] == []

    # The other order is untouched; the expunged one cannot be resent.
    two = stack.http.get(f"{stack.api}/api/v1/dispatches", params={"order_id": "EXP-2"}).json()
    detail = stack.http.get(f"{stack.api}/api/v1/dispatches/{two['items'][0]['dispatch_id']}")
    assert "João Lima" in detail.json()["attempts"][0]["request_excerpt"]
    refused = stack.http.post(f"{stack.api}/api/v1/resend", json={"order_id": "EXP-1"})
    assert refused.status_code == 409
    assert "expunged" in refused.json()["error"]
    assert (
        stack.http.post(f"{stack.api}/api/v1/resend", json={"order_id": "EXP-2"}).status_code == 202
    )

    audit = stack.http.get(f"{stack.api}/api/v1/audit", params={"action": "order.expunge"})
    [entry] = audit.json()["items"]
    assert (entry["actor"], entry["target"], entry["account_id"]) == ("lgpd-admin", "EXP-1", ACCT)
    assert entry["details"] == {"attempts": 2, "events": 2}


def _story(stack: Stack, order_id: str) -> dict[str, object]:
    got = stack.http.get(f"{stack.api}/api/v1/orders/{order_id}")
    return got.json() if got.status_code == 200 else {"events": []}  # type: ignore[no-any-return]
