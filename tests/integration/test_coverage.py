"""Order coverage on the real stack: undelivered orders, resend latest, dry run, backfill, test."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook

from disparo.schemas import TEST_EVENT_TYPE, generate_secret
from tests.integration.conftest import (
    Stack,
    bearer,
    eventually,
    order_event,
    running_stack,
    signed_in_key,
)
from tests.integration.receiver import Receiver

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stack(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """One stack for the module; each test keeps to an account of its own."""
    with running_stack(kafka_bootstrap, tmp_path_factory.mktemp("coverage")) as started:
        yield started


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def _undelivered(stack: Stack, **params: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = {"limit": 7, **params, **({"cursor": cursor} if cursor else {})}
        response = stack.http.get(f"{stack.api}/api/v1/orders/undelivered", params=query)
        assert response.status_code == 200, response.text
        items += response.json()["items"]
        cursor = response.json()["next_cursor"]
        if cursor is None:
            return items


def _pairs(items: list[dict[str, Any]]) -> dict[tuple[str, int], tuple[str, int]]:
    return {(i["order_id"], i["rule_id"]): (i["state"], i["attempts"]) for i in items}


def _stored_events(stack: Stack, account: str, count: int) -> None:
    """Wait until the events sink stored `count` events of the account (a dry run says so)."""

    def stored() -> bool:
        body = {"event_types": ["*"], "account_id": account}
        found = stack.http.post(f"{stack.api}/api/v1/rules/dry-run", json=body).json()
        return int(found["matched_events"]) >= count

    eventually(stored, 45, f"{count} stored events of {account}")


def test_undelivered_orders_are_listed_then_resent_with_their_latest_state(
    stack: Stack, receiver: Receiver
) -> None:
    acct = "cov"
    receiver.take_down("/cov-b", 400)  # a 4xx: the shared breaker stays closed
    common = {"account_id": acct, "max_attempts": 2}
    rule_a = stack.active_rule(
        name="a", event_types=["order.dispatched"], url=f"{receiver.url}/cov-a", **common
    )
    rule_b = stack.active_rule(
        name="b",
        event_types=["*"],
        filters={"payload.carrier": ["acme"]},
        url=f"{receiver.url}/cov-b",
        **common,
    )
    rule_c = stack.active_rule(
        name="c", event_types=["tracking.updated"], url=f"{receiver.url}/cov-c", **common
    )
    rule_d = stack.active_rule(
        name="d",
        event_types=["pre_invoice.created"],
        url=f"{receiver.url}/cov-d",
        paused=True,
        **common,
    )
    orders = [f"COV-{i}" for i in range(30)]
    first = [
        order_event(o, payload={"carrier": "acme" if i < 20 else "other"}, account_id=acct)
        for i, o in enumerate(orders)
    ]
    second = [order_event(o, "tracking.updated", account_id=acct) for o in orders[:10]]
    held = [  # not acme: for rule D only
        order_event(o, "pre_invoice.created", account_id=acct, payload={"carrier": "x"})
        for o in orders[:5]
    ]
    for event in first:
        stack.publisher.publish(event)
    for event in second + held:
        stack.publisher.publish(event)
    latest_b = {e["order_id"]: e for e in first[:20]} | {e["order_id"]: e for e in second}

    # A: 30 delivered, C: 10 delivered, B: 30 dispatches (20 orders) refused, D: 5 held.
    stack.rows_eventually(30, rule_id=rule_b["id"], status="failure")
    stack.rows_eventually(5, rule_id=rule_d["id"], status="held")
    stack.rows_eventually(30, rule_id=rule_a["id"], status="success")
    stack.rows_eventually(10, rule_id=rule_c["id"], status="success")

    expected = {(o, rule_b["id"]): ("failed", 1) for o in orders[:20]}  # a 400 is final
    expected |= {(o, rule_d["id"]): ("held", 0) for o in orders[:5]}
    items = _undelivered(stack, account_id=acct)
    assert _pairs(items) == expected
    by_order = {i["order_id"]: i for i in items if i["rule_id"] == rule_b["id"]}
    assert {o: by_order[o]["latest_event_type"] for o in orders[:11]} == {
        **dict.fromkeys(orders[:10], "tracking.updated"),
        orders[10]: "order.dispatched",
    }
    only_d = _undelivered(stack, account_id=acct, rule_id=rule_d["id"])
    assert _pairs(only_d) == {k: v for k, v in expected.items() if k[1] == rule_d["id"]}
    export = stack.http.get(
        f"{stack.api}/api/v1/orders/undelivered/export.csv", params={"account_id": acct}
    )
    assert export.status_code == 200
    lines = list(csv.DictReader(io.StringIO(export.text)))
    assert {(r["order_id"], int(r["rule_id"])) for r in lines} == set(expected)

    receiver.bring_up("/cov-b")
    b_before = len(receiver.on("/cov-b"))
    pasted = [*orders, "COV-NONE"]
    response = stack.http.post(f"{stack.api}/api/v1/resend/latest", json={"order_ids": pasted})
    assert response.status_code == 202, response.text
    answer = response.json()
    assert answer["queued"] == 30 + 20 + 10 + 5  # each order's latest event, per matching rule
    assert answer["not_found"] == ["COV-NONE"]

    got = receiver.wait_for("/cov-b", b_before + 20, timeout_s=45)[b_before:]
    sent = [json.loads(r.body)["data"] for r in got]
    assert sorted((d["order_id"], d["event_id"]) for d in sent) == sorted(
        (o, e["event_id"]) for o, e in latest_b.items()
    )  # each order once, with its latest event
    eventually(lambda: _undelivered(stack, account_id=acct) == [], 45, "an empty list")
    audit = stack.http.get(f"{stack.api}/api/v1/audit", params={"action": "resend.latest"}).json()
    assert [a["details"]["queued"] for a in audit["items"]] == [65]


def test_a_dry_run_counts_what_a_backfill_then_dispatches(stack: Stack, receiver: Receiver) -> None:
    acct = "dry"
    events = [
        order_event(
            f"DRY-{i % 5}", payload={"carrier": "acme" if i % 3 else "other"}, account_id=acct
        )
        for i in range(15)
    ]
    for event in events:
        stack.publisher.publish(event)
    _stored_events(stack, acct, 15)
    body = {
        "name": "acme only",
        "event_types": ["order.dispatched"],
        "filters": {"payload.carrier": ["acme"]},
        "url": f"{receiver.url}/dry",
        "account_id": acct,
    }
    preview = stack.http.post(f"{stack.api}/api/v1/rules/dry-run", json=body)
    assert preview.status_code == 200, preview.text
    found = preview.json()
    wanted = {e["event_id"] for e in events if e["payload"]["carrier"] == "acme"}
    assert found["matched_events"] == len(wanted) == 10
    assert found["matched_orders"] == len(
        {e["order_id"] for e in events if e["event_id"] in wanted}
    )
    assert {s["event_id"] for s in found["sample"]} == wanted

    rule = stack.active_rule(**body)
    response = stack.http.post(f"{stack.api}/api/v1/rules/{rule['id']}/backfill", json={})
    assert response.status_code == 202, response.text
    assert response.json() == {"matched_events": 10, "queued": 10, "already_dispatched": 0}
    got = receiver.wait_for("/dry", 10, timeout_s=45)
    assert {json.loads(r.body)["data"]["event_id"] for r in got} == wanted
    rows = stack.rows_eventually(10, rule_id=rule["id"])
    assert len({r["dispatch_id"] for r in rows}) == found["matched_events"]

    again = stack.http.post(f"{stack.api}/api/v1/rules/{rule['id']}/backfill", json={})
    assert again.json() == {"matched_events": 10, "queued": 0, "already_dispatched": 10}
    assert len(receiver.on("/dry")) == 10


# Operators on the real stack: every kind, on numbers, texts, booleans and absent fields.
_OPERATOR_FILTERS = {
    "payload.kg": {"gte": 3},
    "payload.zip": {"not": ["01-000"]},
    "payload.vip": {"exists": False},
    "payload.route": {"prefix": "SP"},
}


def _ops_event(i: int, acct: str) -> dict[str, object]:
    payload: dict[str, object] = {
        "kg": i,
        "zip": f"0{i % 3}-000",
        "route": "SP-1" if i % 5 else "RJ",
    }
    if i % 4 == 0:
        payload["vip"] = True
    return order_event("OPS-1", payload=payload, account_id=acct)


def _passes_operator_filters(payload: dict[str, object]) -> bool:
    return (
        int(payload["kg"]) >= 3  # type: ignore[call-overload]
        and payload["zip"] != "01-000"
        and "vip" not in payload
        and str(payload["route"]).startswith("SP")
    )


def test_filters_with_operators_agree_in_the_dry_run_and_the_dispatcher(
    stack: Stack, receiver: Receiver
) -> None:
    acct = "ops"
    stored = [_ops_event(i, acct) for i in range(24)]
    for event in stored:
        stack.publisher.publish(event)
    _stored_events(stack, acct, len(stored))
    body = {
        "name": "operators",
        "event_types": ["*"],
        "filters": _OPERATOR_FILTERS,
        "url": f"{receiver.url}/ops",
        "account_id": acct,
    }
    preview = stack.http.post(f"{stack.api}/api/v1/rules/dry-run", json=body).json()
    wanted = {e["event_id"] for e in stored if _passes_operator_filters(e["payload"])}  # type: ignore[arg-type]
    assert preview["matched_events"] == len(wanted) == 9
    assert {s["event_id"] for s in preview["sample"]} == wanted

    bad = {**body, "filters": {"payload.kg": {"between": [1, 2]}}}
    refused = stack.http.post(f"{stack.api}/api/v1/rules", json=bad)
    assert refused.status_code == 422
    assert "filter 'payload.kg' has the unknown operator 'between'" in refused.json()["error"]
    typed = stack.http.post(
        f"{stack.api}/api/v1/rules", json={**body, "filters": {"payload.kg": {"gt": "3"}}}
    )
    assert typed.status_code == 422
    assert "filter 'payload.kg' 'gt' takes a number" in typed.json()["fields"]["filters"]

    rule = stack.active_rule(**body)
    live = [_ops_event(i, acct) for i in range(24, 48)] + [_ops_event(59, acct)]  # the last passes
    for event in live:
        stack.publisher.publish(event)
    sent = {e["event_id"] for e in live if _passes_operator_filters(e["payload"])}  # type: ignore[arg-type]
    got = receiver.wait_for("/ops", len(sent), timeout_s=45)
    # One order, one partition: every event before the last was matched (or not) before it.
    assert {json.loads(r.body)["data"]["event_id"] for r in got} == sent
    assert len(receiver.on("/ops")) == len(sent)
    assert (
        stack.http.get(f"{stack.api}/api/v1/rules/{rule['id']}").json()["filters"]
        == _OPERATOR_FILTERS
    )


def test_a_test_webhook_reports_its_result_and_is_recorded(
    stack: Stack, receiver: Receiver
) -> None:
    secret = generate_secret()
    fields = {"event_types": ["order.dispatched"], "account_id": "tst", "secret": secret}
    good = stack.active_rule(name="good", url=f"{receiver.url}/tst-ok", **fields)
    response = stack.http.post(f"{stack.api}/api/v1/rules/{good['id']}/test")
    assert response.status_code == 200, response.text
    result = response.json()
    assert (result["status"], result["http_status"], result["reason"]) == ("success", 200, "ok")
    assert result["response_excerpt"] == '{"ok":true}'
    [got] = receiver.on("/tst-ok")
    body = Webhook(secret).verify(got.body, got.headers)
    assert body["type"] == "order.dispatched"
    assert body["data"]["payload"]["test"] is True

    bad = stack.active_rule(name="bad", url=f"{receiver.url}/fail", **fields)
    failed = stack.http.post(f"{stack.api}/api/v1/rules/{bad['id']}/test").json()
    assert (failed["status"], failed["http_status"], failed["reason"]) == (
        "failure",
        503,
        "http_5xx",
    )
    assert failed["error"]

    rows = stack.rows_eventually(2, account_id="tst")
    assert {(r["rule_id"], r["status"], r["event_type"], r["manual"]) for r in rows} == {
        (good["id"], "success", TEST_EVENT_TYPE, True),
        (bad["id"], "failure", TEST_EVENT_TYPE, True),
    }
    assert len(receiver.on("/fail")) == 1  # a test is one attempt, never retried


def test_a_test_webhook_can_neither_forge_nor_hide_a_real_one(
    stack: Stack, receiver: Receiver
) -> None:
    secret = generate_secret()
    rule = stack.active_rule(
        name="real",
        url=f"{receiver.url}/forge",
        event_types=["order.dispatched"],
        filters={"payload.carrier": ["acme"]},
        account_id="forge",
        secret=secret,
        max_attempts=1,
    )
    real = order_event("FORGE-1", account_id="forge")
    stack.publisher.publish(real)
    [stored] = stack.rows_eventually(1, account_id="forge")
    [delivered] = receiver.wait_for("/forge", 1)
    assert "disparo-test" not in delivered.headers  # a real webhook never carries it

    url = f"{stack.api}/api/v1/rules/{rule['id']}/test"
    # The real dispatch's own event, sent again as a test: a new event id, a new dispatch.
    test = stack.http.post(url, json=real)
    assert test.status_code == 200, test.text
    assert test.json()["dispatch_id"] != stored["dispatch_id"]
    [_, got] = receiver.wait_for("/forge", 2)
    assert got.headers["disparo-test"] == "1"
    signed = Webhook(secret).verify(got.body, got.headers)
    assert signed["data"]["event_id"] != real["event_id"]
    assert got.headers["webhook-id"] != delivered.headers["webhook-id"]
    attempts = stack.http.get(f"{stack.api}/api/v1/dispatches/{stored['dispatch_id']}").json()
    assert len(attempts["attempts"]) == 1  # the real dispatch gained no row

    refusals = [
        ({**real, "event_type": "order.paid"}, "event_type", "not an event type rule"),
        ({**real, "payload": {"carrier": "other"}}, "payload.carrier", 'rule wants ["acme"]'),
        ({**real, "payload": {}}, "payload.carrier", "missing"),
        ({**real, "account_id": "default"}, "account_id", "rule's account 'forge'"),
    ]
    for body, field, says in refusals:
        refused = stack.http.post(url, json=body)
        assert refused.status_code == 422, (body, refused.text)
        assert field in refused.json()["fields"], refused.text
        assert says in refused.json()["error"], refused.text
    operator = signed_in_key(stack, "forge-operator", "operator")
    own = stack.http.post(url, json=real, headers=bearer(operator))
    assert own.status_code == 403, own.text
    assert "may publish events" in own.json()["error"]
    sample = stack.http.post(url, headers=bearer(operator))  # the rule's sample event: allowed
    assert sample.status_code == 200, sample.text
    assert len(receiver.on("/forge")) == 3

    audit = stack.http.get(
        f"{stack.api}/api/v1/audit", params={"action": "rule.test", "account_id": "forge"}
    ).json()
    details = sorted((e["details"] for e in audit["items"]), key=lambda d: d["caller_event"])
    assert [(d["caller_event"], d["order_id"], len(d["payload_sha256"])) for d in details] == [
        (False, details[0]["order_id"], 64),
        (True, "FORGE-1", 64),
    ]
