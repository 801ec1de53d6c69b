"""An order's story and the live history on the real stack (Kafka, chdb, all three services)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import httpx
import pytest

from analytics.control.live_feed import MAX_STREAMS_PER_KEY
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
Rows = list[dict[str, Any]]


@pytest.fixture(scope="module")
def stack(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """One stack for the module; each test keeps to accounts of its own."""
    with running_stack(kafka_bootstrap, tmp_path_factory.mktemp("story")) as started:
        yield started


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def _story(stack: Stack, order_id: str, key: str | None = None) -> dict[str, Any]:
    headers = bearer(key) if key else None
    response = stack.http.get(f"{stack.api}/api/v1/orders/{order_id}", headers=headers)
    assert response.status_code == 200, response.text
    story: dict[str, Any] = response.json()
    return story


def _verdicts(story: dict[str, Any]) -> dict[tuple[str, int], tuple[str, str | None]]:
    return {
        (e["event_type"], r["rule_id"]): (r["outcome"], r["why"])
        for e in story["events"]
        for r in e["rules"]
    }


def test_an_orders_story_says_which_rules_fired_and_why_the_others_did_not(
    stack: Stack, receiver: Receiver
) -> None:
    acct = "story"
    common = {"account_id": acct, "url": f"{receiver.url}/story"}
    fires = stack.active_rule(name="fires", event_types=["order.dispatched"], **common)
    picky = stack.active_rule(
        name="picky", event_types=["*"], filters={"payload.carrier": ["acme"]}, **common
    )
    paused = stack.active_rule(name="paused", event_types=["*"], paused=True, **common)
    kinds = ["order.dispatched", "tracking.updated", "pre_invoice.created"]
    for kind in kinds:
        stack.publisher.publish(
            order_event("STORY-1", kind, account_id=acct, payload={"carrier": "correios"})
        )

    def told() -> dict[str, Any] | None:
        response = stack.http.get(f"{stack.api}/api/v1/orders/STORY-1")
        if response.status_code != 200:
            return None
        story: dict[str, Any] = response.json()
        sent = [d for d in story["dispatches"] if d["rule_id"] == fires["id"]]
        held = [d for d in story["dispatches"] if d["rule_id"] == paused["id"]]
        done = len(story["events"]) == 3 and sent and sent[0]["status"] == "success"
        return story if done and len(held) == 3 else None

    story = eventually(told, 60, "the order's three events, its delivery and its held jobs")
    verdicts = _verdicts(story)
    carrier = 'payload.carrier is "correios", rule wants ["acme"]'
    assert verdicts[("order.dispatched", fires["id"])][0] == "dispatched"
    assert verdicts[("order.dispatched", picky["id"])] == ("not_matched", carrier)
    for kind in kinds:
        assert verdicts[(kind, paused["id"])][0] == "held"
        assert verdicts[(kind, picky["id"])] == ("not_matched", carrier)
    for kind in kinds[1:]:
        assert verdicts[(kind, fires["id"])] == (
            "not_matched",
            f'event_type is "{kind}", rule takes ["order.dispatched"]',
        )
    assert len(verdicts) == 9  # every rule of the account, under every event
    [sent] = [d for d in story["dispatches"] if d["rule_id"] == fires["id"]]
    assert [a["status"] for a in sent["attempts"]] == ["success"]
    assert sent["attempts"][0]["http_status"] == 200
    assert {e["payload"]["carrier"] for e in story["events"]} == {"correios"}


def test_an_event_no_rule_matched_still_tells_every_rules_reason(
    stack: Stack, receiver: Receiver
) -> None:
    acct = "story-none"
    common = {"account_id": acct, "url": f"{receiver.url}/none"}
    typed = stack.active_rule(name="typed", event_types=["order.dispatched"], **common)
    picky = stack.active_rule(
        name="picky", event_types=["*"], filters={"payload.carrier": ["acme"]}, **common
    )
    stack.publisher.publish(
        order_event("NONE-1", "tracking.updated", account_id=acct, payload={"carrier": "jadlog"})
    )
    viewer = signed_in_key(stack, "story-viewer", "viewer", acct)

    def stored() -> bool:
        return stack.http.get(f"{stack.api}/api/v1/orders/NONE-1").status_code == 200

    eventually(stored, 30, "the event in the events table")
    story = _story(stack, "NONE-1", viewer)
    assert story["dispatches"] == []
    assert _verdicts(story) == {
        ("tracking.updated", typed["id"]): (
            "not_matched",
            'event_type is "tracking.updated", rule takes ["order.dispatched"]',
        ),
        ("tracking.updated", picky["id"]): (
            "not_matched",
            'payload.carrier is "jadlog", rule wants ["acme"]',
        ),
    }
    other = signed_in_key(stack, "story-other", "viewer", "someone-else")
    response = stack.http.get(f"{stack.api}/api/v1/orders/NONE-1", headers=bearer(other))
    assert response.status_code == 404, response.text  # another account's order is not there


def _rows(response: httpx.Response, count: int) -> Rows:
    """The first `count` rows of an open stream (each read bounded by the client's timeout)."""
    rows: Rows = []
    for line in response.iter_lines():
        if line.startswith("data: "):
            rows.append(json.loads(line[6:]))
        if len(rows) == count:
            return rows
    pytest.fail(f"the stream ended after {len(rows)} rows")


def test_the_live_stream_carries_only_the_keys_account_and_is_bounded(
    stack: Stack, receiver: Receiver
) -> None:
    mine, theirs = "live-a", "live-b"
    for acct in (mine, theirs):
        stack.active_rule(
            name=acct, event_types=["*"], account_id=acct, url=f"{receiver.url}/{acct}"
        )
    key = signed_in_key(stack, "live-viewer", "viewer", mine)
    url = f"{stack.api}/api/v1/dispatches/stream"
    with httpx.Client(headers=bearer(key), timeout=30) as client, client.stream("GET", url) as live:
        assert live.status_code == 200
        assert live.headers["content-type"].startswith("text/event-stream")
        for i in range(3):
            stack.publisher.publish(order_event(f"THEIRS-{i}", account_id=theirs))
        stack.rows_eventually(3, account_id=theirs)  # stored, so written before ours below
        for i in range(4):
            stack.publisher.publish(order_event(f"MINE-{i}", account_id=mine))
        rows = _rows(live, 4)  # a row of the other account would come first
    assert {r["order_id"] for r in rows} == {f"MINE-{i}" for i in range(4)}
    assert {r["account_id"] for r in rows} == {mine}
    assert {r["status"] for r in rows} == {"success"}
    with ExitStack() as streams, httpx.Client(headers=bearer(key), timeout=30) as client:
        for _ in range(MAX_STREAMS_PER_KEY):
            opened = streams.enter_context(client.stream("GET", url))
            assert opened.status_code == 200
        refused = client.get(url)
        assert refused.status_code == 429, refused.text
        assert "live streams open already" in refused.json()["error"]
        assert refused.headers["retry-after"] == "5"
