"""The attempts table and history queries on real ClickHouse: chdb, or a server when configured."""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from analytics.control.held_keeper import HeldKeeper
from analytics.control.job_queue import JobQueue
from analytics.errors import QueryTimeout
from analytics.history import held_rows as held
from analytics.history import queries, schema
from analytics.history.cluster_ddl import cluster_ddl
from analytics.history.sink import row_of
from analytics.history.store import ChdbStore, Row, ServerStore, Store
from analytics.history.topic_sink import dedup_token
from disparo.schemas import AttemptOutcome, OrderEvent, Rule, generate_secret
from disparo.topics import Topics
from tests.factories import outcome
from tests.fakes import FakeProducer
from tests.integration.conftest import clickhouse_url

pytestmark = pytest.mark.integration
NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture(autouse=True)
def empty_table(store: Store) -> None:
    store.command(f"TRUNCATE TABLE {store.database}.{schema.TABLE}")


def rows(outcomes: list[AttemptOutcome]) -> list[Row]:
    return [row_of(o, 0, offset) for offset, o in enumerate(outcomes)]


def test_a_retried_batch_with_the_same_token_is_stored_once(store: Store) -> None:
    batch = rows([outcome("A", NOW - timedelta(minutes=i)) for i in range(5)])
    token = dedup_token({0: (0, 4)})
    store.insert(schema.TABLE, batch, token)
    store.insert(schema.TABLE, batch, token)
    [count] = store.select(f"SELECT count() AS n FROM {store.database}.{schema.TABLE}")
    assert int(count["n"]) == 5
    store.insert(schema.TABLE, batch[:2], dedup_token({0: (0, 1)}))
    [count] = store.select(f"SELECT count() AS n FROM {store.database}.{schema.TABLE}")
    assert int(count["n"]) == 7


def test_summary_counts_failures_in_the_period_only(store: Store) -> None:
    inside = [
        outcome("A", NOW - timedelta(hours=h), "failure" if h % 4 == 0 else "success")
        for h in range(1, 13)
    ]
    outside = [outcome("A", NOW - timedelta(days=9), "failure")]
    store.insert(schema.TABLE, rows(inside + outside), "t1")
    period = queries.Period(NOW - timedelta(days=7), NOW)
    assert by_status(store, period) == {"success": 9, "failure": 3}
    assert by_status(store, period, order_id="A") == {"success": 9, "failure": 3}
    assert by_status(store, period, order_id="B") == {}


def by_status(store: Store, period: queries.Period, **filters: Any) -> dict[str, int]:
    rows = store.select(*queries.summary(store.database, period, **filters))
    return {r["status_"]: int(r["n"]) for r in rows}


def test_hourly_projection_and_edge_rows_count_exactly_like_the_rows(store: Store) -> None:
    # 600 attempts every 3 minutes over 30 hours; the period starts and ends mid-hour.
    reasons = ["timeout", "http_5xx", "connection"]
    made = [
        outcome(
            f"O-{i % 7}",
            NOW - timedelta(minutes=3 * i, seconds=i % 50),
            "failure" if i % 5 == 0 else "success",
            reason="ok" if i % 5 else reasons[i % 3],
            rule_id=1000 + i % 4,
        )
        for i in range(600)
    ]
    store.insert(schema.TABLE, rows(made), "hourly")
    store.insert(schema.TABLE, rows(made), "hourly")  # a retried batch: stored once
    period = queries.Period(NOW - timedelta(hours=20, minutes=17), NOW - timedelta(minutes=163))
    inside = [o for o in made if period.start <= o.dispatched_at < period.end]
    expected = Counter(o.status for o in inside)
    assert by_status(store, period) == dict(expected)

    found = store.select(*queries.failure_breakdown(store.database, period))
    got = Counter({(r["reason_"], int(r["rule_id_"])): int(r["n"]) for r in found})
    want = Counter((o.reason, o.rule_id) for o in inside if o.status == "failure")
    assert got == want
    assert sum(want.values()) == expected["failure"] > 0


def test_order_search_and_status_filter(store: Store) -> None:
    batch = [
        outcome("ORD-1", NOW - timedelta(minutes=1)),
        outcome("ORD-1", NOW - timedelta(minutes=2), "failure"),
        outcome("ORD-2", NOW - timedelta(minutes=3), "failure"),
    ]
    store.insert(schema.TABLE, rows(batch), "t2")
    period = queries.Period(NOW - timedelta(days=1), NOW + timedelta(seconds=1))
    found = store.select(*queries.dispatches(store.database, period, "all", "ORD-1"))
    assert [r["order_id"] for r in found] == ["ORD-1", "ORD-1"]
    failed = store.select(*queries.dispatches(store.database, period, "failure"))
    assert sorted(r["order_id"] for r in failed) == ["ORD-1", "ORD-2"]


def test_keyset_pages_are_newest_first_without_gaps_or_repeats(store: Store) -> None:
    same_time = NOW - timedelta(minutes=5)  # ties on time are broken by attempt id
    batch = [outcome("P", same_time) for _ in range(4)]
    batch += [outcome("P", NOW - timedelta(minutes=m)) for m in range(6, 12)]
    store.insert(schema.TABLE, rows(batch), "t3")
    period = queries.Period(NOW - timedelta(days=1), NOW)
    seen: list[str] = []
    cursor = None
    while True:
        page = store.select(*queries.dispatches(store.database, period, limit=3, cursor=cursor))
        seen.extend(str(r["attempt_id"]) for r in page[:3])
        if len(page) <= 3:
            break
        last = page[2]
        cursor = queries.Cursor(
            datetime.fromisoformat(last["dispatched_at"]).replace(tzinfo=UTC),
            str(last["attempt_id"]),
        )
    assert len(seen) == 10
    assert set(seen) == {o.attempt_id for o in batch}
    times = [o.dispatched_at for o in sorted(batch, key=lambda o: seen.index(o.attempt_id))]
    assert times == sorted(times, reverse=True)


def test_table_has_thirty_day_ttl_and_weekly_partitions(store: Store) -> None:
    [ddl] = store.select(
        "SELECT create_table_query AS q FROM system.tables "
        f"WHERE database = '{store.database}' AND name = '{schema.TABLE}'"
    )
    assert "TTL toDateTime(dispatched_at) + toIntervalDay(30)" in ddl["q"]
    assert "PARTITION BY toMonday(dispatched_at)" in ddl["q"]


def test_cluster_ddl_parses_and_matches_the_single_node_table(store: Store) -> None:
    for statement in cluster_ddl():
        [parsed] = store.select("SELECT formatQuery({q:String}) AS f", {"q": statement})
        assert parsed["f"].startswith("CREATE")
    # The replicated local table is the single-node table on another engine: same columns.
    [local] = [s for s in cluster_ddl() if f"{schema.TABLE}_local ON CLUSTER" in s]
    single = store.select(
        "SELECT name, type FROM system.columns WHERE database = {db:String} AND table = 'attempts'",
        {"db": store.database},
    )
    assert [r["name"] for r in single] == [name for name, _ in schema.ATTEMPT_COLUMNS]
    for name, kind in schema.ATTEMPT_COLUMNS:
        assert f"    {name} {kind}" in local


@pytest.mark.parametrize(
    "order_id", ["O'Brien\\1", "line\nbreak", "tab\there", "pedido-ção-😀", "\\n literal"]
)
def test_search_values_with_escapes_and_unicode_match_exactly(store: Store, order_id: str) -> None:
    store.insert(schema.TABLE, rows([outcome(order_id, NOW - timedelta(minutes=5))]), order_id)
    period = queries.Period(NOW - timedelta(days=1), NOW + timedelta(minutes=1))
    found = store.select(*queries.dispatches(store.database, period, "all", order_id))
    assert [r["order_id"] for r in found] == [order_id]


@pytest.mark.parametrize("old_type", schema.STATUS_TYPES_OLD)
def test_a_table_from_before_the_newer_statuses_is_widened_with_its_rows_and_projections(
    store: Store, old_type: str
) -> None:
    old = f"{store.database}_old_status"
    table, current = f"{old}.{schema.TABLE}", f"{store.database}.{schema.TABLE}"
    store.command(f"CREATE DATABASE IF NOT EXISTS {old}")
    try:
        body = schema.attempt_table_body().replace(schema.STATUS_TYPE, old_type)
        store.command(f"CREATE TABLE {table} {body} ENGINE = MergeTree {schema.ATTEMPT_LAYOUT}")
        store.insert(schema.TABLE, rows([outcome("OLD", NOW, "failure") for _ in (1, 2)]), "o1")
        store.command(f"INSERT INTO {table} SELECT * FROM {current}")
        for statement in schema.status_migration(old_type, old):
            store.command(statement)
        [kind] = store.select(
            "SELECT type FROM system.columns WHERE database = {db:String} "
            f"AND table = '{schema.TABLE}' AND name = 'status'",
            {"db": old},
        )
        assert kind["type"] == schema.STATUS_TYPE
        assert schema.status_migration(kind["type"], old) == []  # done once
        store.command(f"TRUNCATE TABLE {current}")
        store.insert(schema.TABLE, rows([outcome("OLD", NOW, "regressed")]), "o2")
        store.command(f"INSERT INTO {table} SELECT * FROM {current}")
        period = queries.Period(NOW - timedelta(days=1), NOW + timedelta(minutes=1))
        counts = store.select(*queries.summary(old, period))
        assert {r["status_"]: int(r["n"]) for r in counts} == {"failure": 2, "regressed": 1}
        [created] = store.select(
            "SELECT create_table_query AS q FROM system.tables "
            f"WHERE database = '{old}' AND name = '{schema.TABLE}'"
        )
        for name in ("account_hourly", "by_order", "by_account"):
            assert f"PROJECTION {name}" in created["q"]
    finally:
        store.command(f"DROP DATABASE IF EXISTS {old}")


def test_held_rows_are_counted_released_once_and_discarded_with_a_record_before_the_ttl(
    store: Store,
) -> None:
    paused = rule_of(61856, paused=True)
    view = StaticRules({61856: paused})
    producer = FakeProducer()
    topics = Topics("t.")
    keeper = HeldKeeper(store, view, JobQueue(producer, topics), None)  # type: ignore[arg-type]
    old = [held_outcome(f"OLD-{i}", NOW - timedelta(days=29, hours=i + 1)) for i in range(2)]
    new = [held_outcome(f"NEW-{i}", NOW - timedelta(minutes=10 - i)) for i in range(3)]
    store.insert(schema.TABLE, rows(old + new), "held-1")
    assert held.held_counts(store, NOW) == {61856: 5}

    assert keeper.expire(NOW) == 2  # held 29 days: discarded, a day before the TTL
    outcomes = producer.outcomes(topics.outcomes)
    assert sorted(o.order_id for o in outcomes) == ["OLD-0", "OLD-1"]
    assert {(o.status, o.reason, o.final) for o in outcomes} == {("failure", "discarded", True)}
    assert held.held_counts(store, NOW) == {61856: 3}
    assert keeper.check(NOW) == 0  # still paused: nothing released

    view.rules[61856] = paused.changed(paused=False, release_rate=2.0)
    keeper.last_tick -= 1.0  # a second of allowance at 2/s
    keeper.last_scan = 0.0
    assert keeper.check(NOW) == 2
    jobs = producer.jobs(topics.dispatch_jobs)
    assert [j.event.order_id for j in jobs] == ["NEW-0", "NEW-1"]  # oldest first
    assert held.held_counts(store, NOW) == {61856: 1}
    keeper.last_tick -= 1.0
    keeper.last_scan = 0.0
    assert keeper.check(NOW) == 1
    jobs = producer.jobs(topics.dispatch_jobs)
    assert [j.event.order_id for j in jobs] == ["NEW-0", "NEW-1", "NEW-2"]
    assert held.held_counts(store, NOW) == {}
    assert all(not j.manual and j.rule.version == 2 for j in jobs)  # the rule as it is now


class StaticRules:
    """The rules a keeper looks up, as a dict (the view itself is tested on Kafka)."""

    def __init__(self, rules: dict[int, Rule]) -> None:
        self.rules = rules

    def get(self, rule_id: int) -> Rule | None:
        return self.rules.get(rule_id)


def rule_of(rule_id: int, **fields: Any) -> Rule:
    return Rule(
        id=rule_id, name="r", event_types=["*"], url="https://hooks.example.com/in",
        secret=generate_secret(), **fields,
    )  # fmt: skip


def held_outcome(order_id: str, at: datetime) -> AttemptOutcome:
    held_event = OrderEvent(
        event_id=uuid.uuid4(), event_type="order.dispatched", order_id=order_id, occurred_at=at
    )
    return outcome(
        order_id, at, "held", reason="held", http_status=None, final=False, event=held_event,
        event_id=str(held_event.event_id),
    )  # fmt: skip


SLOW_READ = "SELECT sleepEachRow(0.3) AS z FROM numbers(10) SETTINGS max_block_size = 1"


def test_the_sink_inserts_while_a_slow_read_runs(store: Store) -> None:
    finished: list[int] = []
    slow = threading.Thread(target=lambda: finished.append(len(store.select(SLOW_READ))))
    slow.start()
    time.sleep(0.3)  # the read is under way (3 s in all)
    for n, row in enumerate(rows([held_outcome(f"LANE-{i}", NOW) for i in range(3)])):
        store.insert(schema.TABLE, [row], f"lane-{n}")  # the sink's lane: not behind the read
        found = store.check(  # nor are the sink's own lookups
            f"SELECT count() AS n FROM {store.database}.{schema.TABLE} "
            "WHERE order_id = {o:String}",
            {"o": row["order_id"]},
        )
        assert int(found[0]["n"]) == 1
    assert finished == []  # every insert went in while the slow read was still running
    slow.join(10)
    assert finished == [10]


def test_a_read_past_its_time_limit_is_a_timeout_naming_the_limit(store: Store) -> None:
    limited: Store
    if isinstance(store, ChdbStore):  # more connections to the same path, reads limited
        limited = ChdbStore(store.path, store.database, read_limit_s=0.5)
    else:
        limited = ServerStore(clickhouse_url("store_test"), read_limit_s=0.5)
    try:
        with pytest.raises(
            QueryTimeout, match=r"limit of 0\.5 s \(DISPARO_QUERY_TIMEOUT_S\)"
        ) as err:
            limited.select(SLOW_READ)
        assert "TIMEOUT_EXCEEDED" in str(err.value.__cause__)  # cut short by ClickHouse
        # The lane works on, with nothing of the cut query in its next answer.
        assert limited.select("SELECT 1 AS one") == [{"one": 1}]
    finally:
        limited.close()
