"""Accounts in the data path: events match only their own account's rules; rows say whose."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.integration.conftest import Stack, add_key, bearer, eventually, order_event
from tests.integration.receiver import Receiver

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


def test_an_event_reaches_only_the_rules_of_its_account_and_rows_carry_it(
    stack: Stack, receiver: Receiver
) -> None:
    same = {"event_types": ["order.dispatched"], "filters": {"payload.carrier": ["acme"]}}
    rule_a = stack.active_rule(name="a", url=f"{receiver.url}/ok/a", account_id="acct-a", **same)
    rule_b = stack.active_rule(name="b", url=f"{receiver.url}/ok/b", account_id="acct-b", **same)
    legacy = stack.active_rule(name="d", url=f"{receiver.url}/ok/d", **same)
    assert (rule_a["account_id"], legacy["account_id"]) == ("acct-a", "default")
    stack.publisher.publish_many(
        [
            order_event("ACC-A1", account_id="acct-a"),
            order_event("ACC-A2", account_id="acct-a"),
            order_event("ACC-B1", account_id="acct-b"),
            order_event("ACC-D1"),  # a producer that knows nothing of accounts
        ]
    )
    rows = stack.rows_eventually(4)
    assert sorted((r["order_id"], r["rule_id"], r["account_id"]) for r in rows) == [
        ("ACC-A1", rule_a["id"], "acct-a"),
        ("ACC-A2", rule_a["id"], "acct-a"),
        ("ACC-B1", rule_b["id"], "acct-b"),
        ("ACC-D1", legacy["id"], "default"),
    ]
    assert [len(receiver.on(f"/ok/{x}")) for x in "abd"] == [2, 1, 1]
    only_a = stack.dispatches(account_id="acct-a")
    assert {r["order_id"] for r in only_a} == {"ACC-A1", "ACC-A2"}
    summary = stack.http.get(
        f"{stack.api}/api/v1/dispatches/summary", params={"account_id": "acct-b"}
    )
    assert summary.json()["total"] == 1
    rules_b = stack.http.get(f"{stack.api}/api/v1/rules", params={"account_id": "acct-b"}).json()
    assert [r["id"] for r in rules_b["items"]] == [rule_b["id"]]
    csv = stack.http.get(
        f"{stack.api}/api/v1/dispatches/export.csv", params={"account_id": "acct-a"}
    )
    assert len(csv.text.strip().splitlines()) == 3  # header + A's two attempts
    assert "account_id" in csv.text.splitlines()[0]


def test_an_account_key_sees_and_changes_only_its_own_account(
    stack: Stack, receiver: Receiver
) -> None:
    """Everything of B is 404 or absent for A's key; a platform key sees both and filters."""
    keys = {
        name: add_key(stack.settings, f"acct-test-{name}", "admin", account)
        for name, account in (("a", "acct-a"), ("b", "acct-b"))
    }
    eventually(
        lambda: all(
            httpx.get(f"{stack.api}/api/v1/me", headers=bearer(k)).status_code == 200
            for k in keys.values()
        ),
        10,
    )
    a, b = (httpx.Client(base_url=stack.api, headers=bearer(keys[x]), timeout=30) for x in "ab")
    rule = {"event_types": ["*"], "url": f"{receiver.url}/fail", "max_attempts": 1}
    rule_a = a.post("/api/v1/rules", json={"name": "a-rule", **rule})
    assert (rule_a.status_code, rule_a.json()["account_id"]) == (201, "acct-a")
    rule_b = b.post("/api/v1/rules", json={"name": "b-rule", **rule}).json()
    refused = a.post("/api/v1/rules", json={"name": "x", "account_id": "acct-b", **rule})
    assert refused.status_code == 422
    for rid in (rule_a.json()["id"], rule_b["id"]):
        stack.wait_rule_applied(rid, active=True)
    # A's publisher key stamps its account; it may not publish for B.
    sent = a.post("/api/v1/events", json=order_event("ISO-A1"))
    assert sent.status_code == 202
    assert (
        a.post("/api/v1/events", json=order_event("ISO-B0", account_id="acct-b")).status_code == 422
    )
    stack.publisher.publish_many([order_event("ISO-B1", account_id="acct-b")])
    rows = stack.rows_eventually(2, status="failure")
    b_row = next(r for r in rows if r["order_id"] == "ISO-B1")
    a_row = next(r for r in rows if r["order_id"] == "ISO-A1")
    assert (a_row["account_id"], b_row["account_id"]) == ("acct-a", "acct-b")

    def hidden(rule_id: int, row: dict[str, Any], account: str) -> list[Any]:
        """Every way to reach another account's objects: each must answer 404."""
        return [
            ("GET", f"/api/v1/rules/{rule_id}", None),
            ("PUT", f"/api/v1/rules/{rule_id}", {"name": "mine", **rule}),
            ("DELETE", f"/api/v1/rules/{rule_id}", None),
            ("POST", f"/api/v1/rules/{rule_id}/rotate-secret", None),
            ("GET", f"/api/v1/rules?account_id={account}", None),
            ("GET", f"/api/v1/dispatches/{row['dispatch_id']}", None),
            ("GET", f"/api/v1/dispatches?account_id={account}", None),
            ("GET", f"/api/v1/dispatches/summary?account_id={account}", None),
            ("GET", f"/api/v1/dispatches/breakdown?account_id={account}", None),
            ("GET", f"/api/v1/dispatches/export.csv?account_id={account}", None),
            ("GET", f"/api/v1/audit?account_id={account}", None),
            ("POST", "/api/v1/resend", {"dispatch_id": row["dispatch_id"]}),
            ("POST", "/api/v1/resend", {"order_id": row["order_id"]}),
            ("POST", "/api/v1/resend/bulk", {"account_id": account}),
            ("GET", f"/api/v1/accounts/{account}", None),
            ("PUT", f"/api/v1/accounts/{account}", {"name": "mine"}),
            ("POST", f"/api/v1/accounts/{account}/rotate-notification-secret", None),
            ("GET", f"/api/v1/orders/undelivered?account_id={account}", None),
            ("GET", f"/api/v1/orders/undelivered/export.csv?account_id={account}", None),
            ("GET", f"/api/v1/orders/undelivered?rule_id={rule_id}", None),
            ("POST", "/api/v1/resend/latest", {"order_ids": ["x"], "account_id": account}),
            ("POST", "/api/v1/resend/latest", {"order_ids": ["x"], "rule_id": rule_id}),
            ("POST", "/api/v1/rules/dry-run", {"event_types": ["*"], "account_id": account}),
            ("POST", f"/api/v1/rules/{rule_id}/backfill", {}),
            ("POST", f"/api/v1/rules/{rule_id}/test", None),
        ]

    for who, other in ((a, hidden(rule_b["id"], b_row, "acct-b")),
                       (b, hidden(rule_a.json()["id"], a_row, "acct-a"))):  # fmt: skip
        answers = [(m, u, who.request(m, u, json=body).status_code) for m, u, body in other]
        assert [x for x in answers if x[2] != 404] == []
    assert {r["order_id"] for r in a.get("/api/v1/dispatches").json()["items"]} == {"ISO-A1"}
    assert a.get("/api/v1/dispatches", params={"order_id": "ISO-B1"}).json()["items"] == []
    assert a.get("/api/v1/dispatches/summary").json()["total"] == 1
    csv = a.get("/api/v1/dispatches/export.csv").text
    assert "ISO-A1" in csv
    assert "ISO-B1" not in csv
    assert [r["id"] for r in a.get("/api/v1/rules").json()["items"]] == [rule_a.json()["id"]]

    def undelivered() -> list[str]:
        return [i["order_id"] for i in a.get("/api/v1/orders/undelivered").json()["items"]]

    eventually(lambda: undelivered() == ["ISO-A1"], 30, "A's undelivered order, only")
    latest = a.post("/api/v1/resend/latest", json={"order_ids": ["ISO-B1"]}).json()
    assert (latest["queued"], latest["not_found"]) == (0, ["ISO-B1"])  # B's order is not A's
    preview = a.post("/api/v1/rules/dry-run", json={"event_types": ["*"]}).json()
    assert preview["matched_orders"] == 1  # ISO-A1 only
    bulk = a.post("/api/v1/resend/bulk", json={"reason": "http_5xx"}).json()
    assert bulk["queued"] == 1  # A's failure only
    audit_a = a.get("/api/v1/audit").json()["items"]
    assert {e["account_id"] for e in audit_a} == {"acct-a"}
    assert str(rule_b["id"]) not in {e["target"] for e in audit_a}
    keys_a = a.get("/api/v1/keys").json()["items"]
    assert {k["account_id"] for k in keys_a} == {"acct-a"}
    b_key_id = b.get("/api/v1/me").json()["id"]
    assert a.delete(f"/api/v1/keys/{b_key_id}").status_code == 404
    made = a.post("/api/v1/keys", json={"name": "acct-a-viewer", "role": "viewer"}).json()
    assert made["account_id"] == "acct-a"

    platform = stack.http
    everything = platform.get(f"{stack.api}/api/v1/dispatches").json()["items"]
    assert {"ISO-A1", "ISO-B1"} <= {r["order_id"] for r in everything}
    only_b = platform.get(f"{stack.api}/api/v1/audit", params={"account_id": "acct-b"})
    assert {e["account_id"] for e in only_b.json()["items"]} == {"acct-b"}
    a.close()
    b.close()
