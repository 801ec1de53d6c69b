"""A hostile world: broken receivers, poison jobs and private targets cost one failed attempt."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from kafka import KafkaProducer

from disparo.limits import MAX_FILTER_CHARS, MAX_FILTER_VALUES, MAX_FILTERS
from disparo.schemas import OrderEvent, Rule, generate_secret, now_utc
from disparo.topics import MAX_EVENT_BYTES
from tests.integration.conftest import Stack, order_event, read_all, running_stack
from tests.integration.hostile import EXPECTED_REASONS, HostileReceiver
from tests.integration.receiver import Receiver

pytestmark = pytest.mark.integration


@pytest.fixture
def hostile() -> Iterator[HostileReceiver]:
    r = HostileReceiver()
    yield r
    r.close()


@pytest.fixture
def hostiles() -> Iterator[dict[str, HostileReceiver]]:
    """One listener per hostile case: each its own endpoint (host:port), so its own breaker."""
    # Five unhealthy answers from one endpoint open its breaker, by design; with one listener
    # for all ten cases, those taken after the fifth failure would wait for the breaker.
    receivers = {path: HostileReceiver() for path in EXPECTED_REASONS}
    yield receivers
    for receiver in receivers.values():
        receiver.close()


def _healthy(stack: Stack, prefix: str, n: int) -> None:
    stack.publisher.publish_many([order_event(f"{prefix}-{i}") for i in range(n)])


def _legacy_rule(stack: Stack, url: str) -> Rule:
    """A rule written straight to the rules topic, as one saved before the limits existed."""
    rule = Rule(
        id=900001,
        secret=generate_secret(),
        name="legacy",
        event_types=["hostile.legacy"],
        url=url,  # type: ignore[arg-type]
        headers={"x-token": "abc\r\nInjected: yes"},
        max_attempts=1,
        activated_at=now_utc(),
    )
    producer = KafkaProducer(bootstrap_servers=stack.settings.bootstrap_servers)
    try:
        key = str(rule.id).encode()
        producer.send(stack.topics.rules, key=key, value=rule.model_dump_json().encode()).get(30)
    finally:
        producer.close()
    stack.wait_rule_applied(rule.id, active=True)
    return rule


def test_each_hostile_answer_is_one_failed_attempt_and_the_worker_keeps_going(
    stack: Stack, receiver: Receiver, hostiles: dict[str, HostileReceiver]
) -> None:
    stack.active_rule(name="healthy", event_types=["order.dispatched"], url=f"{receiver.url}/ok")
    rules = {
        path: stack.active_rule(
            name=path, event_types=[f"hostile{path}"], url=f"{hostile.url}{path}", max_attempts=1
        )
        for path, hostile in hostiles.items()
    }
    legacy = _legacy_rule(stack, f"{receiver.url}/legacy")
    pid = stack.table.pid("worker")
    _healthy(stack, "BEFORE", 20)
    receiver.wait_for("/ok", 20)

    hostile_events = [order_event(f"HOSTILE{p}", event_type=f"hostile{p}") for p in rules]
    stack.publisher.publish_many([*hostile_events, order_event("LEGACY", "hostile.legacy")])
    _healthy(stack, "AFTER", 20)
    receiver.wait_for("/ok", 40)

    for path, rule in rules.items():
        [row] = stack.rows_eventually(1, rule_id=rule["id"])
        assert (row["status"], row["reason"], row["final"]) == (
            "failure",
            EXPECTED_REASONS[path],
            True,
        ), (path, row["error"])
        assert row["error"]
    [row] = stack.rows_eventually(1, rule_id=legacy.id)
    assert (row["status"], row["reason"]) == ("failure", "invalid_request")
    assert "not visible ASCII" in row["error"]
    assert receiver.on("/legacy") == []  # nothing was sent with a header that could inject
    assert stack.table.pid("worker") == pid  # the same process took every job
    assert len(receiver.webhook_ids("/ok")) == 40


def test_a_job_whose_handling_keeps_crashing_is_dead_lettered_and_the_rest_flow(
    kafka_bootstrap: str, tmp_path: Path, receiver: Receiver
) -> None:
    poison = {"DISPARO_FAILPOINT": "worker.handle=raise:POISON-"}
    with running_stack(kafka_bootstrap, tmp_path, **poison) as stack:
        stack.active_rule(name="r", event_types=["*"], url=f"{receiver.url}/ok")
        pid = stack.table.pid("worker")
        events = [order_event("POISON-1"), *(order_event(f"FINE-{i}") for i in range(30))]
        stack.publisher.publish_many(events)
        receiver.wait_for("/ok", 30)
        [dead] = read_all(kafka_bootstrap, stack.topics.dead_letter, 1)
        headers = {k: v.decode() for k, v in dead.headers}
        assert headers["disparo.stage"] == "delivery"
        assert "handling crashed 3 times" in headers["disparo.reason"]
        assert "FailpointError" in headers["disparo.reason"]
        assert json.loads(dead.value)["event"]["order_id"] == "POISON-1"
        assert stack.table.pid("worker") == pid
        assert not [r for r in receiver.on("/ok") if b"POISON-1" in r.body]


def test_private_targets_are_refused_at_save_or_at_connect_and_never_reached(
    kafka_bootstrap: str, tmp_path: Path, receiver: Receiver, hostile: HostileReceiver
) -> None:
    allow = {"DISPARO_TARGET_ALLOWLIST": f"127.0.0.1:{receiver.port}"}
    with running_stack(kafka_bootstrap, tmp_path, **allow) as stack:
        api = f"{stack.api}/api/v1/rules"
        for literal in (
            "http://169.254.169.254/latest/meta-data",
            f"http://127.0.0.1:{hostile.port}/x",
            f"http://[::ffff:127.0.0.1]:{hostile.port}/x",
            f"http://[2002:7f00:1::]:{hostile.port}/x",
        ):
            refused = stack.http.post(api, json={"name": "n", "event_types": ["*"], "url": literal})
            assert refused.status_code == 422, literal
            assert "DISPARO_TARGET_ALLOWLIST" in refused.json()["fields"]["url"]
        names = [f"http://localhost:{hostile.port}/x", f"http://localhost.:{hostile.port}/x"]
        named = [stack.active_rule(name=u, event_types=["*"], url=u, max_attempts=1) for u in names]
        stack.active_rule(name="ok", event_types=["*"], url=f"{receiver.url}/ok")
        stack.publisher.publish_many([order_event(f"SSRF-{i}") for i in range(5)])
        receiver.wait_for("/ok", 5)
        for rule in named:
            rows = stack.rows_eventually(5, rule_id=rule["id"])
            assert {r["reason"] for r in rows} == {"target_refused"}
            assert all("DISPARO_TARGET_ALLOWLIST" in r["error"] for r in rows)
        assert hostile.accepted == 0  # no connection ever reached the listener


def test_rule_limits_are_accepted_at_their_edge_and_refused_past_it(stack: Stack) -> None:
    api = f"{stack.api}/api/v1/rules"
    base = {"name": "edge", "event_types": ["*"], "url": "https://hooks.example.com/"}
    url = base["url"]
    cases = [
        ({"url": url + "a" * (2048 - len(url))}, {"url": url + "a" * (2049 - len(url))}, "url"),
        (
            {"headers": {f"x-h{i}": "v" for i in range(32)}},
            {"headers": {f"x-h{i}": "v" for i in range(33)}},
            "headers",
        ),
        ({"headers": {"x-ok": "v" * 20}}, {"headers": {"x ok": "v"}}, "headers"),
        ({"headers": {"x-ok": "bearer a.b"}}, {"headers": {"x-ok": "caf\u00e9"}}, "headers"),
        ({"headers": {"x-ok": "a b"}}, {"headers": {"x-ok": "a\r\nb"}}, "headers"),
        ({"headers": {"x-host": "h"}}, {"headers": {"Host": "h"}}, "headers"),
        ({"headers": {"x-webhook": "h"}}, {"headers": {"webhook-id": "h"}}, "headers"),
    ]
    for edge, past, field in cases:
        accepted = stack.http.post(api, json={**base, **edge}, timeout=30)
        assert accepted.status_code == 201, (edge, accepted.text)
        refused = stack.http.post(api, json={**base, **past}, timeout=30)
        assert refused.status_code == 422, past
        assert field in refused.json()["fields"], refused.json()


def test_hostile_receiver_listener_counts_connections(hostile: HostileReceiver) -> None:
    answer = httpx.post(f"{hostile.url}/fine", content=b"{}", timeout=5)
    assert (answer.status_code, answer.text, hostile.accepted) == (200, "ok", 1)


def test_four_hanging_endpoints_do_not_hold_up_a_healthy_one(
    stack: Stack, receiver: Receiver
) -> None:
    hanging = [HostileReceiver() for _ in range(4)]
    try:
        for n, listener in enumerate(hanging):
            stack.active_rule(
                name=f"hang-{n}", event_types=["*"], url=f"{listener.url}/hang", timeout_s=30
            )
        stack.active_rule(name="healthy", event_types=["*"], url=f"{receiver.url}/ok")
        # 300 jobs per hanging endpoint: 32 in flight, 128 waiting, the rest deferred.
        stack.publisher.publish_many([order_event(f"ISO-{i}") for i in range(300)])
        receiver.wait_for("/ok", 300, timeout_s=25)
        assert all(listener.accepted == 32 for listener in hanging)  # each holds its slots
        hanging_rows = [r for r in stack.all_rows() if "/hang" in r["url"]]
        assert hanging_rows == []  # every hanging request is still waiting for its answer
    finally:
        for listener in hanging:
            listener.close()


def _event_of_size(size: int) -> dict[str, Any]:
    """An event whose normalised JSON (as it goes on the topic) is exactly `size` bytes."""
    event = order_event("BIG-1")
    event["payload"] = {"blob": ""}
    base = len(OrderEvent.model_validate(event).model_dump_json())
    event["payload"] = {"blob": "x" * (size - base)}
    assert len(OrderEvent.model_validate(event).model_dump_json()) == size
    return event


def _rule_of_size(rule: dict[str, Any], size: int) -> bytes:
    """The rule as JSON of exactly `size` bytes, padded with filter values within limits."""
    filters: dict[str, list[str]] = {}
    for path in (f"payload.x{i}" for i in range(MAX_FILTERS)):
        filters[path] = [""]
        while True:
            room = size - len(json.dumps({**rule, "filters": filters}))
            if room <= MAX_FILTER_CHARS:
                filters[path][-1] = "y" * room
                body = json.dumps({**rule, "filters": filters}).encode()
                assert len(body) == size
                return body
            filters[path][-1] = "y" * MAX_FILTER_CHARS
            if len(filters[path]) == MAX_FILTER_VALUES:
                break
            filters[path].append("")
    raise AssertionError("no room for the padding within the filter limits")


def test_body_limits_are_accepted_at_their_edge_and_refused_past_it(stack: Stack) -> None:
    events = f"{stack.api}/api/v1/events"
    at_limit = stack.http.post(events, json=_event_of_size(MAX_EVENT_BYTES), timeout=60)
    assert at_limit.status_code == 202, at_limit.text
    over = stack.http.post(events, json=_event_of_size(MAX_EVENT_BYTES + 1), timeout=60)
    assert over.status_code == 413
    assert "1024 KiB" in over.json()["error"]
    eleven = [_event_of_size(MAX_EVENT_BYTES // 2)] * 21  # ~10.5 MiB in one request
    too_much = stack.http.post(events, json=eleven, timeout=60)
    assert too_much.status_code == 413
    assert "10 MiB" in too_much.json()["error"]

    rules = f"{stack.api}/api/v1/rules"
    rule = {"name": "big", "event_types": ["*"], "url": "https://hooks.example.com/"}
    edge = _rule_of_size(rule, 64 * 1024)
    headers = {"content-type": "application/json"}
    assert stack.http.post(rules, content=edge, headers=headers, timeout=30).status_code == 201
    past = edge.replace(b'"y', b'"yy', 1)
    refused = stack.http.post(rules, content=past, headers=headers, timeout=30)
    assert refused.status_code == 413
    assert "64 KiB" in refused.json()["error"]
    resend = stack.http.post(
        f"{stack.api}/api/v1/resend", content=b" " * (16 * 1024 + 1), timeout=30
    )
    assert resend.status_code == 413
    assert "16 KiB" in resend.json()["error"]
