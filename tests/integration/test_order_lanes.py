"""Order-aware rules on the real stack: one order's webhooks in order, newer ones win."""

from __future__ import annotations

import os
import signal
import uuid
from typing import Any

import pytest

from consumers.lanes import LaneKey
from deploy.local.broker import free_port
from disparo.schemas import dispatch_id_for
from tests.integration.conftest import DISPARO, Stack, eventually, order_event, stored_lane
from tests.integration.receiver import Received, Receiver

pytestmark = pytest.mark.integration


def ids_of(events: list[dict[str, Any]], rule_id: int) -> list[str]:
    return [dispatch_id_for(uuid.UUID(e["event_id"]), rule_id) for e in events]


def successes(receiver: Receiver, ids: list[str]) -> list[str]:
    """The webhook-ids among `ids` that were answered 200, in the order they arrived."""
    return [r.webhook_id for r in receiver.requests if r.webhook_id in ids and r.status == 200]


def requests_of(receiver: Receiver, ids: list[str]) -> list[Received]:
    return [r for r in receiver.requests if r.webhook_id in ids]


def waiting_in_lane(stack: Stack, key: LaneKey) -> list[str]:
    """The dispatch ids waiting in a lane as the order-lanes topic holds it now."""
    lane = stored_lane(stack, key)
    return [] if lane is None else [p.dispatch_id for p in lane.waiting]


def test_per_order_waits_for_a_retried_event_and_lets_other_orders_pass(
    stack: Stack, receiver: Receiver
) -> None:
    rule = stack.active_rule(
        name="ordered", event_types=["*"], url=f"{receiver.url}/ok", ordering="per_order"
    )
    x = [order_event("X", status) for status in ("order.created", "order.paid", "order.shipped")]
    others = [order_event(f"OTHER-{i}") for i in range(20)]
    x_ids, other_ids = ids_of(x, rule["id"]), ids_of(others, rule["id"])
    receiver.plan(x_ids[0], [503, 503])
    stack.publisher.publish_many([*x, *others])

    eventually(lambda: successes(receiver, x_ids) == x_ids, 45, "X's three events delivered")
    seen = requests_of(receiver, x_ids)
    assert [(r.webhook_id, r.status) for r in seen] == [
        (x_ids[0], 503), (x_ids[0], 503), (x_ids[0], 200), (x_ids[1], 200), (x_ids[2], 200),
    ]  # fmt: skip
    first_ok = receiver.requests.index(seen[2])
    arrived = [i for i, r in enumerate(receiver.requests) if r.webhook_id in other_ids]
    assert len(arrived) == 20
    assert max(arrived) < first_ok
    rows = stack.rows_eventually(len(x_ids) + 2, order_id="X")
    assert [r["status"] for r in rows] == ["failure", "failure", "success", "success", "success"]


def test_per_order_survives_a_worker_killed_mid_retries(stack: Stack, receiver: Receiver) -> None:
    rule = stack.active_rule(
        name="ordered", event_types=["*"], url=f"{receiver.url}/ok", ordering="per_order"
    )
    x = [order_event("K", status) for status in ("order.created", "order.paid", "order.shipped")]
    x_ids = ids_of(x, rule["id"])
    receiver.plan(x_ids[0], [503, 503, 503, 503])
    stack.publisher.publish_many(x)
    eventually(
        lambda: sum(r.status == 503 for r in requests_of(receiver, x_ids)) >= 2,
        30,
        "two failed attempts of K's first event",
    )
    # Once the lane is written (K's later events wait in it), kill the worker.
    key = (rule["id"], "K")
    eventually(lambda: waiting_in_lane(stack, key) == x_ids[1:], 30, "K's lane written")
    pid = stack.table.pid("worker")
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    assert successes(receiver, x_ids) == []
    stack.table.start("worker", [DISPARO, "worker"], stack.env)

    eventually(lambda: len(successes(receiver, x_ids)) >= 3, 60, "K's three events delivered")
    assert successes(receiver, x_ids) == x_ids  # 1, 2, 3, each once
    seen = requests_of(receiver, x_ids)
    first_ok = next(i for i, r in enumerate(seen) if r.status == 200)
    assert {r.webhook_id for r in seen[:first_ok + 1]} == {x_ids[0]}  # fmt: skip


def test_per_order_survives_a_rebalance_to_a_running_worker(
    stack: Stack, receiver: Receiver
) -> None:
    port = free_port()
    env = {**stack.env, "DISPARO_WORKER_PORT": str(port)}
    stack.table.start("worker-2", [DISPARO, "worker"], env)
    try:
        stack.table.wait_http("worker-2", f"http://127.0.0.1:{port}/readyz", 90)
        rule = stack.active_rule(
            name="ordered", event_types=["*"], url=f"{receiver.url}/ok", ordering="per_order"
        )
        x = [order_event("R", kind) for kind in ("order.created", "order.paid", "order.shipped")]
        x_ids = ids_of(x, rule["id"])
        receiver.plan(x_ids[0], [503, 503, 503, 503])
        stack.publisher.publish_many(x)
        key = (rule["id"], "R")
        eventually(lambda: waiting_in_lane(stack, key) == x_ids[1:], 30, "R's lane written")
        # The worker that delivers R dies; the one already running takes its partitions over.
        owner, survivor = ("worker", "worker-2")
        if x_ids[0] not in stack.log_tail("worker", 400_000):
            owner, survivor = survivor, owner
        pid = stack.table.pid(owner)
        assert pid is not None
        os.kill(pid, signal.SIGKILL)

        eventually(lambda: len(successes(receiver, x_ids)) >= 3, 90, "R's three events delivered")
        assert successes(receiver, x_ids) == x_ids
        assert "read back 1 order lanes (2 jobs waiting)" in stack.log_tail(survivor, 400_000)
    finally:
        stack.table.stop("worker-2", grace_s=10)


def test_supersede_ends_an_older_retried_event_once_a_newer_one_is_delivered(
    stack: Stack, receiver: Receiver
) -> None:
    rule = stack.active_rule(
        name="latest", event_types=["*"], url=f"{receiver.url}/ok", supersede=True
    )
    x = [order_event("S", status) for status in ("order.created", "order.paid")]
    x_ids = ids_of(x, rule["id"])
    receiver.plan(x_ids[0], [503])
    stack.publisher.publish_many(x)

    rows = stack.rows_eventually(3, order_id="S")
    by_dispatch = {(r["dispatch_id"], r["attempt"]): (r["status"], r["reason"]) for r in rows}
    assert by_dispatch == {
        (x_ids[0], 1): ("failure", "http_5xx"),
        (x_ids[1], 1): ("success", "ok"),
        (x_ids[0], 2): ("superseded", "superseded"),
    }
    assert [r.webhook_id for r in requests_of(receiver, x_ids)] == x_ids  # never POSTed again
    summary = stack.http.get(
        f"{stack.api}/api/v1/dispatches/summary", params={"order_id": "S"}
    ).json()
    assert summary == {
        "total": 2, "failed": 1, "failure_rate": 0.5, "held": 0, "superseded": 1, "regressed": 0,
    }  # fmt: skip
    listed = stack.dispatches(status="superseded", order_id="S")
    assert [r["dispatch_id"] for r in listed] == [x_ids[0]]


def test_a_paused_rule_holds_its_dispatches_and_releases_them_oldest_first_at_its_rate(
    stack: Stack, receiver: Receiver
) -> None:
    rule = stack.active_rule(
        name="paused", event_types=["*"], url=f"{receiver.url}/ok", paused=True, release_rate=10
    )
    assert rule["paused_reason"] == "paused by test-admin"
    events = [order_event("P", f"step.{i}") for i in range(50)]
    ids = ids_of(events, rule["id"])
    stack.publisher.publish_many(events)
    rows = stack.rows_eventually(50, order_id="P", status="held")
    assert {r["dispatch_id"] for r in rows} == set(ids)
    held = stack.http.get(f"{stack.api}/api/v1/rules/{rule['id']}/held").json()
    assert (held["paused"], held["held"]) == (True, 50)
    assert receiver.requests == []

    released = stack.http.post(f"{stack.api}/api/v1/rules/{rule['id']}/release", timeout=30)
    assert released.status_code == 200, released.text
    got = receiver.wait_for("/ok", 50, timeout_s=60)
    assert [r.webhook_id for r in got] == ids  # oldest first
    spread = got[-1].at - got[0].at
    assert spread >= 3.5, f"50 released at 10/s arrived within {spread:.1f}s"
    eventually(
        lambda: stack.http.get(f"{stack.api}/api/v1/rules/{rule['id']}/held").json()["held"] == 0,
        30,
        "nothing held any more",
    )
    assert len(stack.rows_eventually(50, order_id="P", status="success")) == 50


def test_a_gone_endpoint_pauses_the_rule_and_later_events_are_held_until_discarded(
    stack: Stack, receiver: Receiver
) -> None:
    rule = stack.active_rule(name="gone", event_types=["*"], url=f"{receiver.url}/gone")
    stack.publisher.publish(order_event("G-1"))
    receiver.wait_for("/gone", 1)
    eventually(lambda: stack.rule(rule["id"])["paused"] is True, 30, "the pause on 410")
    assert "410 Gone" in stack.rule(rule["id"])["paused_reason"]
    later = [order_event(f"G-{i}") for i in range(2, 5)]
    stack.publisher.publish_many(later)
    held = stack.rows_eventually(3, rule_id=rule["id"], status="held")
    assert sorted(r["order_id"] for r in held) == ["G-2", "G-3", "G-4"]
    assert len(receiver.on("/gone")) == 1

    gone = stack.http.post(f"{stack.api}/api/v1/rules/{rule['id']}/discard-held", timeout=30)
    assert gone.json() == {"rule_id": rule["id"], "discarded": 3}
    dropped = stack.rows_eventually(3, rule_id=rule["id"], reason="discarded")
    assert {(r["order_id"], r["status"], r["final"]) for r in dropped} == {
        (f"G-{i}", "failure", True) for i in range(2, 5)
    }
    assert stack.http.get(f"{stack.api}/api/v1/rules/{rule['id']}/held").json()["held"] == 0
    audit = stack.http.get(f"{stack.api}/api/v1/audit", params={"action": "rule.discard_held"})
    [entry] = audit.json()["items"]
    assert entry["details"] == {"discarded": 3}
