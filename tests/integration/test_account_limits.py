"""Accounts as objects: limits a platform admin sets, and signed notifications to the owner."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from standardwebhooks.webhooks import Webhook

from tests.integration.conftest import (
    Stack,
    bearer,
    eventually,
    every_record,
    notifications,
    order_event,
    publish_until,
    running_stack,
    signed_in_key,
)
from tests.integration.receiver import Receiver

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]


@pytest.fixture(scope="module")
def stack(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """One stack: rules judged every 0.5 s over a 6 s window; acct-l metered on its own; an
    open circuit probes each second (a failing endpoint keeps having attempts to judge)."""
    home = tmp_path_factory.mktemp("accounts")
    with running_stack(
        kafka_bootstrap,
        home,
        DISPARO_FAILING_WINDOW="6s",
        DISPARO_HEALTH_INTERVAL_S="0.5",
        DISPARO_METRICS_ACCOUNTS="acct-l",
        DISPARO_BREAKER_OPEN_S="1",
    ) as started:
        yield started


def client(stack: Stack, name: str, role: Any, account: str | None) -> httpx.Client:
    key = signed_in_key(stack, name, role, account)
    return httpx.Client(base_url=stack.api, headers=bearer(key), timeout=30)


def test_a_platform_admin_describes_accounts_and_an_account_sees_only_its_own(
    stack: Stack,
) -> None:
    platform = stack.http
    made = platform.post(
        f"{stack.api}/api/v1/accounts",
        json={"id": "acct-v", "name": "Loja Verde", "limits": {"max_rules": 3}},
    )
    assert made.status_code == 201, made.text
    assert made.json()["limits"] == {
        "max_rules": 3, "resends_per_minute": None, "events_per_second": None,
    }  # fmt: skip
    again = platform.post(f"{stack.api}/api/v1/accounts", json={"id": "acct-v", "name": "x"})
    assert again.status_code == 409
    bad = platform.post(f"{stack.api}/api/v1/accounts", json={"id": "no spaces", "name": "x"})
    assert (bad.status_code, list(bad.json()["fields"])) == (422, ["id"])

    own = client(stack, "acct-v-admin", "admin", "acct-v")
    assert own.get("/api/v1/accounts").json()["items"][0]["name"] == "Loja Verde"
    assert own.get("/api/v1/accounts/acct-v").json()["limits"]["max_rules"] == 3
    assert own.get("/api/v1/accounts/acct-l").status_code == 404
    assert own.post("/api/v1/accounts", json={"id": "acct-z", "name": "z"}).status_code == 403
    raise_own = {"name": "Loja Verde", "limits": {"max_rules": 50}}
    refused = own.put("/api/v1/accounts/acct-v", json=raise_own)
    assert refused.status_code == 403
    assert "platform admin" in refused.json()["error"]
    renamed = own.put(
        "/api/v1/accounts/acct-v", json={"name": "Loja Verde SA", "limits": {"max_rules": 3}}
    )
    assert renamed.json()["name"] == "Loja Verde SA"
    # An account nobody described reads as its id, without limits.
    other = client(stack, "acct-w-viewer", "viewer", "acct-w")
    assert other.get("/api/v1/accounts").json()["items"][0]["name"] == "acct-w"
    listed = {a["id"] for a in platform.get(f"{stack.api}/api/v1/accounts").json()["items"]}
    assert "acct-v" in listed
    actions = platform.get(f"{stack.api}/api/v1/audit", params={"account_id": "acct-v"}).json()
    assert [e["action"] for e in actions["items"]][:2] == ["account.update", "account.create"]
    for c in (own, other):
        c.close()


def test_limits_refuse_with_429_and_retry_after_and_nothing_refused_is_published(
    stack: Stack, receiver: Receiver
) -> None:
    limits = {"max_rules": 1, "resends_per_minute": 2, "events_per_second": 5}
    made = stack.http.post(
        f"{stack.api}/api/v1/accounts",
        json={"id": "acct-l", "name": "Limited", "limits": limits},
    )
    assert made.status_code == 201, made.text
    admin = client(stack, "acct-l-admin", "admin", "acct-l")
    rule = {"event_types": ["*"], "url": f"{receiver.url}/ok"}
    first = admin.post("/api/v1/rules", json={"name": "one", **rule})
    assert first.status_code == 201
    second = admin.post("/api/v1/rules", json={"name": "two", **rule})
    assert second.status_code == 409
    assert "limit is 1" in second.json()["error"]
    stack.wait_rule_applied(first.json()["id"], active=True)

    events = [order_event(f"LIM-{n}") for n in range(10)]
    assert admin.post("/api/v1/events", json=events[:5]).status_code == 202
    over = admin.post("/api/v1/events", json=events[5:10])  # needs a second's refill
    assert over.status_code == 429
    assert over.headers["retry-after"] == "1"
    assert "limit of 5 events per second" in over.json()["error"]
    too_many = admin.post("/api/v1/events", json=[order_event(f"LIM-X{n}") for n in range(6)])
    assert too_many.status_code == 413
    time.sleep(int(over.headers["retry-after"]))  # the client does as it was told
    assert admin.post("/api/v1/events", json=events[5:10]).status_code == 202

    published = every_record(stack.settings.kafka_bootstrap, stack.topics.order_events)
    ours = [json.loads(r.value) for r in published if r.key.startswith(b"LIM-")]
    assert sorted(e["order_id"] for e in ours) == sorted(e["order_id"] for e in events)

    rows = stack.rows_eventually(10, account_id="acct-l")
    ids = [r["dispatch_id"] for r in rows]
    assert admin.post("/api/v1/resend", json={"dispatch_id": ids[0]}).status_code == 202
    assert admin.post("/api/v1/resend", json={"dispatch_id": ids[1]}).status_code == 202
    third = admin.post("/api/v1/resend", json={"dispatch_id": ids[2]})
    assert third.status_code == 429
    assert 1 <= int(third.headers["retry-after"]) <= 30
    by_order = admin.post("/api/v1/resend", json={"order_id": "LIM-3"})
    assert by_order.status_code == 429  # the limit holds whichever way a resend is asked

    # A platform key may raise the limits; the new limit applies at once.
    raised = {"name": "Limited", "limits": {**limits, "resends_per_minute": 100}}
    assert stack.http.put(f"{stack.api}/api/v1/accounts/acct-l", json=raised).status_code == 200
    assert admin.post("/api/v1/resend", json={"dispatch_id": ids[2]}).status_code == 202

    metrics = httpx.get(f"{stack.worker}/metrics", timeout=10).text
    assert 'disparo_account_deliveries_total{account="acct-l",outcome="success"}' in metrics
    assert 'account="acct-n"' not in metrics  # not named in DISPARO_METRICS_ACCOUNTS
    admin.close()


def test_the_owner_hears_of_a_failing_rule_and_its_recovery_in_signed_webhooks(
    stack: Stack, receiver: Receiver, owner: Receiver
) -> None:
    made = stack.http.post(
        f"{stack.api}/api/v1/accounts",
        json={
            "id": "acct-n",
            "name": "Notified",
            "notification_url": f"{owner.url}/notify",
            "failing_threshold": 0.5,
        },
    )
    assert made.status_code == 201, made.text
    secret = made.json()["notification_secret"]
    assert "notification_secret" not in stack.http.get(f"{stack.api}/api/v1/accounts/acct-n").json()
    fields = {"name": "n", "event_types": ["*"], "max_attempts": 1, "account_id": "acct-n"}
    rule = stack.active_rule(url=f"{receiver.url}/fail", **fields)

    started = time.monotonic()
    [failing] = publish_until(
        stack, "acct-n", "NOT-F", lambda: notifications(owner, "rule.failing"), 40
    )
    assert time.monotonic() - started >= 6  # it stayed above the threshold for the window
    verified = Webhook(secret).verify(failing["raw"], failing["headers"])
    assert verified["data"]["event_type"] == "rule.failing"
    data = verified["data"]["payload"]
    assert (data["rule_id"], data["threshold"]) == (rule["id"], 0.5)
    assert data["failure_ratio"] == 1.0
    assert verified["data"]["account_id"] == "acct-n"

    fixed = {**fields, "url": f"{receiver.url}/ok"}
    assert stack.http.put(f"{stack.api}/api/v1/rules/{rule['id']}", json=fixed).status_code == 200
    [recovered] = publish_until(
        stack, "acct-n", "NOT-R", lambda: notifications(owner, "rule.recovered"), 40
    )
    body = Webhook(secret).verify(recovered["raw"], recovered["headers"])
    assert body["data"]["payload"]["rule_id"] == rule["id"]
    assert body["data"]["payload"]["failure_ratio"] <= 0.5
    assert recovered["headers"]["webhook-id"] != failing["headers"]["webhook-id"]
    # Each change is told once; both are in the history as attempts of the account.
    assert len(notifications(owner, "rule.failing")) == 1
    sent = stack.rows_eventually(2, account_id="acct-n", rule_id=0)
    assert sorted(r["event_type"] for r in sent) == ["rule.failing", "rule.recovered"]
    assert {r["status"] for r in sent} == {"success"}
    # A notification can be resent by hand like any dispatch: the same webhook-id again.
    first_id = failing["headers"]["webhook-id"]
    resent = stack.http.post(f"{stack.api}/api/v1/resend", json={"dispatch_id": first_id})
    assert resent.status_code == 202, resent.text
    eventually(
        lambda: [r.headers["webhook-id"] for r in owner.on("/notify")].count(first_id) == 2,
        30,
        "the resent notification",
    )
