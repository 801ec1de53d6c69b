"""Two analytics processes on one broker: every background duty runs in exactly one of them.

Each process keeps its own chdb and its own sink groups (so both store every outcome) and
joins the same duties group; Kafka's group coordinator makes one the owner.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from deploy.local.processes import ProcessTable
from tests.integration.conftest import (
    DISPARO,
    Stack,
    bearer,
    clickhouse_url,
    drop_database,
    eventually,
    every_record,
    free_port,
    order_event,
    running_stack,
)
from tests.integration.receiver import Receiver

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


@dataclass
class Pair:
    """The stack's analytics (`a`) and a second analytics process (`b`) beside it."""

    stack: Stack
    b_url: str
    b_table: ProcessTable
    b_env: dict[str, str]

    @property
    def urls(self) -> dict[str, str]:
        return {"a": self.stack.api, "b": self.b_url}

    def pid(self, which: str) -> int:
        table = self.stack.table if which == "a" else self.b_table
        found = table.pid("analytics")
        assert found is not None
        return found

    def metric(self, which: str, name: str) -> float | None:
        """A metric of one process; None when it does not export it (or is not running)."""
        try:
            text = httpx.get(f"{self.urls[which]}/metrics", timeout=10).text
        except httpx.TransportError:
            return None
        for line in text.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        return None

    def owner(self) -> str:
        """Which process owns the duties (exactly one, once the group settled)."""

        def settled() -> str | None:
            owning = [w for w in ("a", "b") if self.metric(w, "disparo_duties_owner") == 1.0]
            return owning[0] if len(owning) == 1 else None

        found: str = eventually(settled, 30, "exactly one owner of the duties")
        return found

    def held(self, which: str, rule_id: int) -> int:
        response = httpx.get(
            f"{self.urls[which]}/api/v1/rules/{rule_id}/held",
            headers=bearer(self.stack.key),
            timeout=30,
        )
        assert response.status_code == 200, response.text
        count: int = response.json()["held"]
        return count


@pytest.fixture(scope="module")
def pair(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    home = tmp_path_factory.mktemp("duties")
    with running_stack(
        kafka_bootstrap,
        home / "a",
        DISPARO_FAILING_WINDOW="6s",
        DISPARO_HEALTH_INTERVAL_S="0.5",
        DISPARO_BREAKER_OPEN_S="1",
    ) as stack:
        prefix = stack.settings.topic_prefix
        env = {
            **stack.env,
            "DISPARO_HOME": str(home / "b"),
            "DISPARO_CLICKHOUSE_URL": clickhouse_url(prefix.rstrip(".") + "_b"),
            "DISPARO_API_PORT": str(free_port()),
            "DISPARO_SINK_GROUP": f"{prefix}sink-b",
            "DISPARO_EVENT_SINK_GROUP": f"{prefix}events-b",
        }
        table = ProcessTable(home / "b" / "run")
        url = f"http://127.0.0.1:{env['DISPARO_API_PORT']}"
        try:
            table.start("analytics", [DISPARO, "analytics"], env)
            table.wait_http("analytics", f"{url}/readyz", 90)
            pair = Pair(stack, url, table, env)
            eventually(
                lambda: all(pair.metric(w, "disparo_duties_members") == 2.0 for w in "ab"),
                30,
                "both processes counting two members",
            )
            yield pair
        finally:
            print(f"----- analytics b log -----\n{_tail(table, 'analytics')}")
            table.stop("analytics", grace_s=20)
            drop_database(env["DISPARO_CLICKHOUSE_URL"])


def _tail(table: ProcessTable, name: str) -> str:
    path = table.log_file(name)
    return path.read_text(errors="replace")[-3000:] if path.exists() else ""


def _jobs_of_rule(bootstrap: str, topic: str, rule_id: int) -> Counter[str]:
    """How many jobs of each dispatch of the rule the topic holds now."""
    jobs = [json.loads(r.value) for r in every_record(bootstrap, topic) if r.value]
    return Counter(j["dispatch_id"] for j in jobs if j["rule"]["rule_id"] == rule_id)


def test_held_webhooks_are_released_once_even_when_the_owner_is_killed_mid_release(
    pair: Pair, receiver: Receiver
) -> None:
    stack = pair.stack
    rule = stack.active_rule(
        name="held", event_types=["*"], url=f"{receiver.url}/ok", paused=True, release_rate=4
    )
    held = 16
    stack.publisher.publish_many([order_event(f"HELD-{n}") for n in range(held)])
    for which in ("a", "b"):  # both sinks store every held row
        eventually(lambda w=which: pair.held(w, rule["id"]) == held, 45, f"{held} held in {which}")
    owner = pair.owner()
    released = stack.http.post(f"{stack.api}/api/v1/rules/{rule['id']}/release", timeout=30)
    assert released.status_code == 200, released.text

    receiver.wait_for("/ok", 4, timeout_s=30)  # mid-release: 4 a second for 4 s
    os.kill(pair.pid(owner), signal.SIGKILL)
    survivor = "b" if owner == "a" else "a"
    assert pair.owner() == survivor  # after the session timeout (4 s)

    eventually(lambda: pair.held(survivor, rule["id"]) == 0, 60, "every held row released")
    arrived = receiver.wait_for("/ok", held, timeout_s=30)
    ids = Counter(r.webhook_id for r in arrived)
    assert len(ids) == held
    jobs = _jobs_of_rule(stack.settings.kafka_bootstrap, stack.topics.dispatch_jobs, rule["id"])
    # The dispatcher's first job (held by the worker) and one release each: never two.
    assert sorted(jobs.values()) == [2] * held
    assert [n for n in ids.values() if n != 1] == []
    # The killed process back, for the next tests.
    table, env = (stack.table, stack.env) if owner == "a" else (pair.b_table, pair.b_env)
    table.start("analytics", [DISPARO, "analytics"], env)
    table.wait_http("analytics", f"{pair.urls[owner]}/readyz", 90)
    eventually(lambda: pair.metric(survivor, "disparo_duties_members") == 2.0, 30, "two again")


def test_a_failing_rule_is_announced_once(pair: Pair, receiver: Receiver) -> None:
    stack = pair.stack
    owners = Receiver()  # its own host:port: the failing endpoint's open circuit is not its
    described = stack.http.post(
        f"{stack.api}/api/v1/accounts",
        json={"id": "duty-acct", "name": "Duty", "notification_url": f"{owners.url}/notify"},
    )
    assert described.status_code == 201, described.text
    rule = stack.active_rule(
        name="failing",
        event_types=["*"],
        url=f"{receiver.url}/fail",
        account_id="duty-acct",
        max_attempts=1,
    )
    deadline = time.monotonic() + 45
    try:
        while not owners.on("/notify") and time.monotonic() < deadline:
            event = order_event(f"FAIL-{time.monotonic_ns()}", account_id="duty-acct")
            stack.publisher.publish(event)
            time.sleep(0.2)
        [told] = owners.wait_for("/notify", 1, timeout_s=30)
    finally:
        owners.close()
    assert json.loads(told.body)["type"] == "rule.failing"
    assert json.loads(told.body)["data"]["payload"]["rule_id"] == rule["id"]
    name = 'disparo_rule_health_changes_total{state="failing"}'
    judged = [pair.metric(w, name) or 0.0 for w in ("a", "b")]
    assert sorted(judged) == [0.0, 1.0]  # one process judged it, the other never did
    notices = _jobs_of_rule(stack.settings.kafka_bootstrap, stack.topics.dispatch_jobs, 0)
    assert sum(notices.values()) == 1


def test_an_account_limit_holds_across_both_processes(pair: Pair) -> None:
    stack = pair.stack
    limits = {"events_per_second": 10}
    made = stack.http.post(
        f"{stack.api}/api/v1/accounts", json={"id": "duty-lim", "name": "L", "limits": limits}
    )
    assert made.status_code == 201, made.text
    clients = [
        httpx.Client(base_url=u, headers=bearer(stack.key), timeout=30) for u in pair.urls.values()
    ]
    accepted = refused = 0
    started = time.monotonic()
    n = 0
    while time.monotonic() - started < 4.0:
        for c in clients:
            n += 1
            event = order_event(f"LIM-{n}", account_id="duty-lim")
            answer = c.post("/api/v1/events", json=event)
            assert answer.status_code in (202, 429), answer.text
            accepted += answer.status_code == 202
            refused += answer.status_code == 429
    elapsed = time.monotonic() - started
    for c in clients:
        c.close()
    # 10 a second across both (each takes 5), plus each one's first full bucket of 5.
    assert accepted <= 10 * elapsed + 10 + 1, (accepted, elapsed)
    assert accepted >= 10 * (elapsed - 1), (accepted, elapsed)
    assert refused > 0
