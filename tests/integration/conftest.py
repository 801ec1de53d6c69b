"""Session fixtures: a real Kafka broker (Maven Central jars) and per-test disparo stacks."""

from __future__ import annotations

import functools
import json
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from kafka import KafkaConsumer, TopicPartition

from analytics.control.keys import publish_key
from analytics.history.store import ChdbStore, ServerStore, Store, ensure_schema
from consumers.lane_log import StoredLanes
from consumers.lanes import Lane, LaneKey
from deploy.local.broker import free_port, temporary_broker
from deploy.local.processes import ProcessTable
from disparo.access import Role, new_key
from disparo.kafka import ensure_topics, make_producer
from disparo.ops_http import STACKS_PATH
from disparo.schemas import dispatch_id_for, now_utc
from disparo.secret_box import new_key_text
from disparo.settings import KernelSettings
from disparo.topics import Topics
from producers.publish import Publisher
from tests.integration.receiver import Receiver

DISPARO = str(Path(sys.executable).with_name("disparo"))
RETRY_SCHEDULE = "1s,2s"  # short tiers, so retry paths finish within a test
SESSION_TIMEOUT_S = "4"  # a killed service's partitions move on after 4 s (default 10)
# Set to clickhouse://host:port to run every test on a ClickHouse server instead of chdb.
SERVER_URL = os.environ.get("DISPARO_CLICKHOUSE_TEST_URL", "").rstrip("/")


def clickhouse_url(database: str) -> str:
    """The DISPARO_CLICKHOUSE_URL of one test: a database of its own on the test server, or ''."""
    return f"{SERVER_URL}/{database}" if SERVER_URL else ""


def drop_database(url: str) -> None:
    """Remove a test's database from the test server (chdb data lives in tmp_path)."""
    if url:
        from analytics.history.store import ServerStore

        store = ServerStore(url)
        store.command(f"DROP DATABASE IF EXISTS {store.database}")
        store.close()


def eventually(check: Callable[[], Any], timeout_s: float = 30.0, what: str = "condition") -> Any:
    """Poll `check` until it returns something truthy; fail with `what` on timeout."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(0.2)


def order_event(
    order_id: str, event_type: str = "order.dispatched", **extra: Any
) -> dict[str, Any]:
    """A valid OrderEvent as a publisher sends it."""
    return {
        "event_id": str(uuid.uuid4()),
        "event_type": event_type,
        "order_id": order_id,
        "order_status": "dispatched",
        "occurred_at": now_utc().isoformat(),
        "payload": {"carrier": "acme"},
        **extra,
    }


def order_events(prefix: str, n: int, orders: int | None = None) -> list[dict[str, Any]]:
    """`n` events spread over `orders` order ids (one each by default)."""
    return [order_event(f"{prefix}-{i % (orders or n)}") for i in range(n)]


def dispatch_ids(events: list[dict[str, Any]], rule_id: int) -> set[str]:
    """The dispatch ids (webhook-ids) one rule gives these events."""
    return {dispatch_id_for(uuid.UUID(str(e["event_id"])), rule_id) for e in events}


def read_all(bootstrap: str, topic: str, count: int, timeout_s: float = 30) -> list[Any]:
    """Up to `count` records of partition 0 of `topic`, from its beginning."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        consumer.seek_to_beginning(tp)
        records: list[Any] = []
        deadline = time.monotonic() + timeout_s
        while len(records) < count and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(batch)
        return records
    finally:
        consumer.close()


def every_record(bootstrap: str, topic: str) -> list[Any]:
    """Every record of every partition of `topic`, up to its end now."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        records: list[Any] = []
        deadline = time.monotonic() + 30
        while any(consumer.position(tp) < ends[tp] for tp in tps):
            assert time.monotonic() < deadline, f"{topic} not read to its end"
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(batch)
        return records
    finally:
        consumer.close()


def stored_lane(stack: Stack, key: LaneKey) -> Lane | None:
    """One order lane as the order-lanes topic holds it now (None: never written, or gone),
    read back as a worker reads it."""
    consumer = KafkaConsumer(bootstrap_servers=stack.settings.kafka_bootstrap)
    try:
        topic = stack.topics.order_lanes
        tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        stored = StoredLanes()
        while any(consumer.position(tp) < ends[tp] for tp in tps):
            for records in consumer.poll(timeout_ms=500).values():
                for r in records:
                    stored.apply(r.partition, r.key, r.value)
    finally:
        consumer.close()
    return stored.lanes.get(key)


def thread_stacks_of(url: str, key: str) -> str:
    """A running service's thread stacks, from its ops endpoint (a platform admin's key)."""
    try:
        return httpx.get(f"{url}{STACKS_PATH}", headers=bearer(key), timeout=5).text
    except httpx.HTTPError as exc:
        return f"(not available: {exc})"


_stopping: list[threading.Thread] = []


def stop_in_background(table: ProcessTable, names: list[str], then: Callable[[], None]) -> None:
    """SIGTERM a finished stack now and wait for its exit while the next test runs."""
    # A graceful stop takes about a second (faust's own shutdown waits one); nothing of a
    # finished stack is shared with the next test (own prefix, groups, ports and chdb path).
    thread = threading.Thread(
        target=lambda: (table.stop_all(names, grace_s=20), then()), name="stack-stop"
    )
    thread.start()
    _stopping.append(thread)


def stacks_stopped() -> None:
    """Wait until every stack stopped in the background has exited (SIGKILL after 20 s)."""
    while _stopping:
        _stopping.pop().join()


@pytest.fixture(scope="session", autouse=True)
def no_process_left() -> Iterator[None]:
    """The session ends only once every stack's processes have exited."""
    yield
    stacks_stopped()


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real single-node Kafka broker for the whole session, stopped at the end."""
    with temporary_broker(tmp_path_factory.mktemp("kafka")) as bootstrap:
        yield bootstrap
        stacks_stopped()  # services leave their groups while the broker still answers


def notifications(owner: Receiver, kind: str) -> list[dict[str, Any]]:
    """The notifications of `kind` an owner's /notify got: body, headers and raw bytes."""
    found = []
    for request in owner.on("/notify"):
        body = json.loads(request.body)
        if body["type"] == kind:
            found.append({"body": body, "headers": request.headers, "raw": request.body})
    return found


def publish_until(
    stack: Stack,
    account: str,
    prefix: str,
    done: Callable[[], Any],
    timeout_s: float = 60.0,
    every_s: float = 0.3,
) -> Any:
    """Publish one event of `account` every `every_s` (live traffic) until `done()` is truthy."""
    deadline = time.monotonic() + timeout_s
    n = 0
    while time.monotonic() < deadline:
        stack.publisher.publish_many([order_event(f"{prefix}-{n}", account_id=account)])
        n += 1
        found = done()
        if found:
            return found
        time.sleep(every_s)
    raise AssertionError(f"nothing after {timeout_s} s of traffic ({n} events)")


@pytest.fixture
def owner() -> Iterator[Receiver]:
    """An account owner's notification endpoint: another host:port than the rules', whose
    open circuit would otherwise hold the notifications back too."""
    found = Receiver()
    yield found
    found.close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@dataclass
class Stack:
    """One disparo deployment on its own topic prefix, groups, ports and chdb path."""

    settings: KernelSettings
    api: str
    dispatcher: str
    table: ProcessTable
    publisher: Publisher
    env: dict[str, str]
    worker: str = ""
    names: list[str] = field(default_factory=list)
    key: str = ""  # an admin API key

    @property
    def topics(self) -> Topics:
        return Topics(self.settings.topic_prefix)

    @functools.cached_property
    def http(self) -> httpx.Client:
        """An HTTP client that signs in with the stack's admin key."""
        return httpx.Client(headers=bearer(self.key), timeout=30)

    def create_rule(self, **fields: Any) -> dict[str, Any]:
        response = self.http.post(f"{self.api}/api/v1/rules", json=fields, timeout=30)
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created

    def active_rule(self, **fields: Any) -> dict[str, Any]:
        """Create a rule and wait until the dispatcher applies it."""
        rule = self.create_rule(**fields)
        self.wait_rule_applied(rule["id"], active=True)
        return rule

    def wait_rule_applied(self, rule_id: int, active: bool, timeout_s: float = 30) -> None:
        """Wait until the dispatcher's rules table holds the rule in that state."""

        def applied() -> bool:
            rules = httpx.get(f"{self.dispatcher}/rules", timeout=5).json()["rules"]
            return {"id": rule_id, "active": active} in rules

        eventually(applied, timeout_s, f"dispatcher to apply rule {rule_id} active={active}")

    def dispatches(self, **params: Any) -> list[dict[str, Any]]:
        response = self.http.get(f"{self.api}/api/v1/dispatches", params=params, timeout=10)
        assert response.status_code == 200, response.text
        items: list[dict[str, Any]] = response.json()["items"]
        return items

    def all_rows(self, **params: Any) -> list[dict[str, Any]]:
        """Every attempt row matching `params`, following the cursor through all pages."""
        rows: list[dict[str, Any]] = []
        cursor = None
        while True:
            query = {"limit": 500, **params, **({"cursor": cursor} if cursor else {})}
            page = self.http.get(f"{self.api}/api/v1/dispatches", params=query, timeout=30).json()
            rows.extend(page["items"])
            cursor = page["next_cursor"]
            if cursor is None:
                return rows

    def rows_eventually(self, count: int, **params: Any) -> list[dict[str, Any]]:
        """At least `count` rows matching `params`, oldest attempt first, waiting up to 45 s."""

        def enough() -> list[dict[str, Any]] | None:
            rows = self.all_rows(**params)
            return rows if len(rows) >= count else None

        rows: list[dict[str, Any]] = eventually(enough, 45, f"{count} rows for {params}")
        return sorted(rows, key=lambda r: (r["dispatched_at"], r["attempt"]))

    def wait_all_final(self, expected: set[str], timeout_s: float) -> None:
        """Wait until every dispatch in `expected` has a final successful attempt row."""

        def all_final() -> bool:
            rows = self.all_rows(status="success")
            return {r["dispatch_id"] for r in rows if r["final"]} >= expected

        eventually(all_final, timeout_s, f"a final row for each of {len(expected)} dispatches")

    def total(self) -> int:
        """The summary's total attempts over the default period."""
        summary = self.http.get(f"{self.api}/api/v1/dispatches/summary", timeout=30).json()
        return int(summary["total"])

    def rule(self, rule_id: int) -> dict[str, Any]:
        found: dict[str, Any] = self.http.get(
            f"{self.api}/api/v1/rules/{rule_id}", timeout=10
        ).json()
        return found

    def restart(self, name: str) -> None:
        """Stop a service (SIGTERM) and start it again with the same settings."""
        self.table.stop(name, grace_s=20)
        self.table.start(name, [DISPARO, name], self.env)

    def log_tail(self, name: str, chars: int = 4000) -> str:
        return self.table.log_file(name).read_text(errors="replace")[-chars:]


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def add_key(settings: KernelSettings, name: str, role: Role, account_id: str | None = None) -> str:
    """A new API key of `role` (of one account, or a platform key), in the api-keys topic."""
    secret, record = new_key(name, role, account_id)
    producer = make_producer(settings, client_id="test-keys")
    try:
        publish_key(producer, Topics(settings.topic_prefix).api_keys, record)
    finally:
        producer.close(10)
    return secret


def signed_in_key(stack: Stack, name: str, role: Role, account_id: str | None = None) -> str:
    """A new key of `role` (of one account, or a platform key), once the API knows it."""
    key = add_key(stack.settings, name, role, account_id)
    eventually(
        lambda: httpx.get(f"{stack.api}/api/v1/me", headers=bearer(key)).status_code == 200,
        10,
        f"the API to know key {name}",
    )
    return key


@pytest.fixture
def stack(kafka_bootstrap: str, tmp_path: Path) -> Iterator[Stack]:
    """Dispatcher, delivery worker and analytics as real processes, stopped after the test."""
    with running_stack(kafka_bootstrap, tmp_path) as started:
        yield started


@contextmanager
def running_stack(
    bootstrap: str,
    home: Path,
    prefix: str | None = None,
    service_env: dict[str, dict[str, str]] | None = None,
    **extra_env: str,
) -> Iterator[Stack]:
    """A stack on its own prefix, groups and ports; `extra_env` adds DISPARO_* settings,
    `service_env` more for one service (its own Kafka credentials)."""
    kafka_bootstrap, tmp_path = bootstrap, home
    prefix = prefix or f"t{uuid.uuid4().hex[:8]}."
    ports = {name: free_port() for name in ("api", "dispatcher", "worker")}
    env = dict(os.environ)
    env.update(
        {
            "DISPARO_KAFKA_BOOTSTRAP": kafka_bootstrap,
            "DISPARO_TOPIC_PREFIX": prefix,
            "DISPARO_HOME": str(tmp_path),
            "DISPARO_CLICKHOUSE_URL": clickhouse_url(prefix.rstrip(".")),
            "DISPARO_DISPATCHER_GROUP": f"{prefix}dispatcher",
            "DISPARO_WORKER_GROUP": f"{prefix}delivery",
            "DISPARO_SINK_GROUP": f"{prefix}sink",
            "DISPARO_EVENT_SINK_GROUP": f"{prefix}events",
            "DISPARO_DUTIES_GROUP": f"{prefix}duties",
            "DISPARO_API_PORT": str(ports["api"]),
            "DISPARO_DISPATCHER_PORT": str(ports["dispatcher"]),
            "DISPARO_WORKER_PORT": str(ports["worker"]),
            "DISPARO_TARGET_ALLOWLIST": "127.0.0.0/8:*",
            "DISPARO_SINK_LINGER_MS": "100",
            "DISPARO_RETRY_SCHEDULE": RETRY_SCHEDULE,
            "DISPARO_KAFKA_SESSION_TIMEOUT_S": SESSION_TIMEOUT_S,
            "DISPARO_SECRET_KEY": new_key_text(),
            **extra_env,
        }
    )
    # The test's own clients connect as the services do (DISPARO_KAFKA_* security included).
    security = {
        name.removeprefix("DISPARO_").lower(): value
        for name, value in extra_env.items()
        if name.startswith("DISPARO_KAFKA_") and name != "DISPARO_KAFKA_BOOTSTRAP"
    }
    settings = KernelSettings(
        kafka_bootstrap=kafka_bootstrap,
        topic_prefix=prefix,
        home=tmp_path,
        retry_schedule=RETRY_SCHEDULE,
        topic_replication=int(env.get("DISPARO_TOPIC_REPLICATION", "1")),
        **security,
    )
    ensure_topics(settings)
    key = add_key(settings, "test-admin", "admin")
    table = ProcessTable(tmp_path / "run")
    names = ["analytics", "dispatcher", "worker"]
    publisher = Publisher(settings)
    api, dispatcher, worker = (
        f"http://127.0.0.1:{ports[n]}" for n in ("api", "dispatcher", "worker")
    )
    try:
        for name in names:
            table.start(name, [DISPARO, name], {**env, **(service_env or {}).get(name, {})})
        table.wait_http("analytics", f"{api}/readyz", 90)
        table.wait_http("dispatcher", f"{dispatcher}/healthz", 90)
        table.wait_http("worker", f"{worker}/readyz", 90)
        yield Stack(settings, api, dispatcher, table, publisher, env, worker, names, key)
    finally:
        publisher.close()
        urls = {"analytics": api, "dispatcher": dispatcher, "worker": worker}
        for name, url in urls.items():  # where each service's threads wait: shown on failure
            print(f"----- {name} threads -----\n{thread_stacks_of(url, key)}")
        for name in names:
            tail = table.log_file(name).read_text(errors="replace")[-3000:]
            print(f"----- {name} log -----\n{tail}")
        database = env["DISPARO_CLICKHOUSE_URL"]
        stop_in_background(table, names, lambda: drop_database(database))


@pytest.fixture(scope="session")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    """chdb, or the server DISPARO_CLICKHOUSE_TEST_URL names, with the schema in place."""
    url = clickhouse_url(f"store_test_{uuid.uuid4().hex[:8]}")
    # chdb allows one data path per process: every test using a store in-process shares it.
    opened: Store = (
        ServerStore(url)
        if url
        else ChdbStore(Path(tmp_path_factory.mktemp("chdb")), database="store_test")
    )
    ensure_schema(opened)
    yield opened
    opened.close()
    drop_database(url)
