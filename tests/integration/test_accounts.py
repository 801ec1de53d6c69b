"""Accounts in the data path: events match only their own account's rules; rows say whose."""

from __future__ import annotations

import pytest

from tests.integration.conftest import Stack, order_event
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
