"""The events table on real ClickHouse: the SQL matcher and the story's `why` agree with the
dispatcher's matcher."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analytics.history import event_queries, queries, schema
from analytics.history.event_queries import RuleScope
from analytics.history.event_sink import event_row
from analytics.history.sink import row_of
from analytics.history.store import Store
from disparo.matching import matches_if_active, why_not
from disparo.schemas import OrderEvent, Rule, RuleFields, dispatch_id_for
from tests.factories import event, outcome, rule

pytestmark = pytest.mark.integration
NOW = datetime.now(UTC).replace(microsecond=0)
PERIOD = queries.Period(NOW - timedelta(days=1), NOW + timedelta(minutes=1))

_KEYS = st.sampled_from(["carrier", "w", "kg", "a.b", "", "n", "k'q"])
_SCALARS = st.one_of(
    st.sampled_from(["acme", "1", "", "true", "shipped", "it's", "a\\b", "{x}", "n\x00l\n", "ç"]),
    st.sampled_from(["1e3", "1.5", "-2", " 5", "0x10", "inf", "1.", ".5", "2E-1", "-0", "\u0661"]),
    st.integers(-2, 2),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False, width=16),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.none(),
)
_PAYLOAD = st.recursive(
    st.dictionaries(_KEYS, _SCALARS, max_size=4),
    lambda inner: st.dictionaries(
        _KEYS, st.one_of(_SCALARS, inner, st.lists(_SCALARS)), max_size=4
    ),
    max_leaves=12,
)
_TYPES = ["order.dispatched", "tracking.updated", "pre_invoice.created"]
_EVENTS = st.builds(
    lambda account, kind, order, status, payload: event(
        account_id=account,
        event_type=kind,
        order_id=order,
        order_status=status,
        payload=payload,
    ),
    st.sampled_from(["a", "b"]),
    st.sampled_from(_TYPES),
    st.sampled_from(["ORD-1", "ORD-2", "1"]),
    st.one_of(st.none(), st.sampled_from(["new", "shipped", "1"])),
    _PAYLOAD,
)
_PATHS = st.sampled_from(
    [
        "order_status", "event_type", "order_id", "account_id", "occurred_at", "payload",
        "payload.carrier", "payload.w", "payload.w.kg", "payload.kg", "payload.n",
        "payload.a.b", "payload.", "payload.w.", "nothing", "payload.k'q",
    ]
)  # fmt: skip
_ALLOWED = st.lists(
    st.sampled_from(
        [
            "acme",
            "1",
            "0",
            "-1",
            "2",
            "1.0",
            "0.0",
            "-0.0",
            "1.5",
            "true",
            "false",
            "",
            "None",
            "shipped",
            "new",
            "order.dispatched",
            "ORD-1",
            "a",
            "{}",
            "[]",
            "it's",
            "a\\b",
            "{x}",
            "n\x00l\n",
            "ç",
        ]
    ),
    min_size=1,
    max_size=4,
)
_BOUNDS = st.one_of(
    st.sampled_from([-1, 0, 1, 2, 0.5, 1.5, 1000, 1e-7, -0.0]),
    st.integers(-3, 3),
    st.floats(allow_nan=False, allow_infinity=False, width=16),
)
_SPECS = st.one_of(
    _ALLOWED,
    st.builds(lambda v: {"not": v}, _ALLOWED),
    st.builds(lambda op, n: {op: n}, st.sampled_from(["gt", "gte", "lt", "lte"]), _BOUNDS),
    st.builds(lambda b: {"exists": b}, st.booleans()),
    st.builds(
        lambda p: {"prefix": p}, st.sampled_from(["a", "1", "n", "ç", "it'", "{", "a\\", "-"])
    ),
)
_RULES = st.builds(
    lambda account, kinds, filters: rule(account_id=account, event_types=kinds, filters=filters),
    st.sampled_from(["a", "b"]),
    st.one_of(st.just(["*"]), st.lists(st.sampled_from(_TYPES), min_size=1, max_size=2)),
    st.dictionaries(_PATHS, _SPECS, max_size=3),
)


def _store_events(store: Store, events: list[OrderEvent]) -> None:
    store.command(f"TRUNCATE TABLE {store.database}.{schema.EVENTS_TABLE}")
    rows = [event_row(e, NOW - timedelta(seconds=i), 0, i) for i, e in enumerate(events)]
    store.insert(schema.EVENTS_TABLE, rows, uuid.uuid4().hex)


def _sql_matches(store: Store, r: RuleFields) -> set[str]:
    params: dict[str, Any] = {}
    condition = event_queries.rule_condition(r, "r", params)
    sql = (
        f"SELECT toString(event_id) AS id FROM {store.database}.{schema.EVENTS_TABLE} "
        f"WHERE {condition}"
    )
    return {row["id"] for row in store.select(sql, params)}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=st.lists(_EVENTS, min_size=1, max_size=25), rules=st.lists(_RULES, max_size=5))
def test_the_sql_matcher_agrees_with_the_dispatchers_matcher(
    store: Store, events: list[OrderEvent], rules: list[Rule]
) -> None:
    _store_events(store, events)
    for r in rules:
        expected = {str(e.event_id) for e in events if matches_if_active(r, e)}
        assert _sql_matches(store, r) == expected, (r.event_types, r.filters)
        # An order's story says why a rule did not match; it must never disagree.
        told = {str(e.event_id) for e in events if why_not(r, e) is None}
        assert told == expected, (r.event_types, r.filters)
        for e in events:
            why = why_not(r, e)
            assert why is None or why.split(" is ")[0] in ("account_id", "event_type", *r.filters)


def test_a_dry_run_counts_events_and_orders_and_samples_them(store: Store) -> None:
    wanted = [event(order_id=f"ORD-{i % 4}", payload={"carrier": "acme"}) for i in range(10)]
    others = [event(payload={"carrier": "other"}), event(event_type="tracking.updated")]
    _store_events(store, wanted + others + wanted[:3])  # the first three published twice
    body = rule(filters={"payload.carrier": ["acme"]})
    [found] = store.select(*event_queries.dry_run(store.database, PERIOD, body))
    assert int(found["matched_events"]) == 10
    assert int(found["matched_orders"]) == 4
    # The repeats of one insert were merged by the engine on the way in.
    assert sorted(item[0] for item in found["sample"]) == sorted(str(e.event_id) for e in wanted)
    earlier = queries.Period(NOW - timedelta(days=2), NOW - timedelta(days=1))
    [none] = store.select(*event_queries.dry_run(store.database, earlier, body))
    assert int(none["matched_events"]) == 0


def test_the_latest_matching_event_of_each_order_and_rule(store: Store) -> None:
    # Oldest first in the table: the row of index i was published i seconds before NOW.
    newest_first = [
        event(order_id="A", order_status="delivered", event_type="tracking.updated"),
        event(order_id="A", order_status="shipped"),
        event(order_id="A", order_status="new"),
        event(order_id="B", order_status="new"),
        event(order_id="C", order_status="new", account_id="other"),
    ]
    _store_events(store, newest_first)
    scopes = [
        RuleScope(1, rule(id=1, event_types=["*"])),
        RuleScope(2, rule(id=2, event_types=["order.dispatched"])),
    ]
    sql, params = event_queries.latest_events(
        store.database, scopes, ["A", "B", "C"], NOW - timedelta(days=1)
    )
    found = {
        (row["order_id"], int(row["rule_id"])): OrderEvent.model_validate_json(row["event_json"])
        for row in store.select(sql, params)
    }
    assert set(found) == {("A", 1), ("A", 2), ("B", 1), ("B", 2)}
    assert found["A", 1].order_status == "delivered"
    assert found["A", 2].order_status == "shipped"  # the latest this rule matches
    assert found["B", 2].order_status == "new"


def test_undelivered_pairs_are_those_whose_latest_event_has_no_success(store: Store) -> None:
    store.command(f"TRUNCATE TABLE {store.database}.{schema.TABLE}")
    orders = {name: event(order_id=name) for name in ("ok", "failed", "retrying", "held", "new")}
    older = event(order_id="ok")  # delivered earlier; the order's latest event counts
    _store_events(store, [*orders.values(), older])

    def tried(name: str, status: str, final: bool = True) -> Any:
        e = orders[name]
        return outcome(
            name, NOW, status, event_id=str(e.event_id), rule_id=1, final=final,
            dispatch_id=dispatch_id_for(e.event_id, 1),
        )  # fmt: skip

    attempts = [
        tried("ok", "success"),
        tried("failed", "failure", final=False),
        tried("failed", "failure"),
        tried("retrying", "failure", final=False),
        tried("held", "held"),
        outcome(
            "new",
            NOW,
            "success",
            event_id=str(older.event_id),
            rule_id=1,
            dispatch_id=dispatch_id_for(older.event_id, 1),
        ),
    ]
    store.insert(schema.TABLE, [row_of(o, 0, i) for i, o in enumerate(attempts)], "u1")
    scopes = [RuleScope(1, rule(id=1, event_types=["*"]))]
    sql, params = event_queries.undelivered(store.database, PERIOD, scopes, 100)
    found = {
        row["order_id"]: (row["state"], int(row["attempts"])) for row in store.select(sql, params)
    }
    assert found == {
        "failed": ("failed", 2),
        "retrying": ("pending", 1),
        "held": ("held", 0),
        "new": ("pending", 0),
    }
    first = store.select(*event_queries.undelivered(store.database, PERIOD, scopes, 2))
    assert len(first) == 3  # a page of 2 and one more: there is a next page
    last = first[1]
    after = event_queries.CoverageCursor(
        datetime.fromisoformat(str(last["latest_at"])).isoformat(), last["order_id"], 1
    )
    second = store.select(*event_queries.undelivered(store.database, PERIOD, scopes, 2, after))
    assert [r["order_id"] for r in first[:2] + second] == [
        r["order_id"] for r in store.select(sql, params)
    ]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=st.lists(_EVENTS, min_size=1, max_size=25), rules=st.lists(_RULES, max_size=6))
def test_the_many_rules_matcher_agrees_with_the_dispatchers_matcher(
    store: Store, events: list[OrderEvent], rules: list[Rule]
) -> None:
    _store_events(store, events)
    if not rules:
        return
    scopes = [RuleScope(i + 1, r) for i, r in enumerate(rules)]
    matched, accounts = event_queries.rules_matched(scopes)
    sql = (
        f"SELECT toString(event_id) AS id, rule_id FROM {store.database}.{schema.EVENTS_TABLE} "
        f"ARRAY JOIN {matched} AS rule_id WHERE {accounts}"
    )
    found = {(row["id"], int(row["rule_id"])) for row in store.select(sql)}
    expected = {
        (str(e.event_id), i + 1)
        for e in events
        for i, r in enumerate(rules)
        if matches_if_active(r, e)
    }
    assert found == expected


@settings(max_examples=30, deadline=None)
@given(event_id=st.uuids(), rule_id=st.integers(0, 2**63 - 1))
def test_the_sql_dispatch_id_is_the_workers(
    store: Store, event_id: uuid.UUID, rule_id: int
) -> None:
    expression = event_queries.dispatch_id_sql(f"toUUID('{event_id}')", f"toUInt64({rule_id})")
    [row] = store.select(f"SELECT {expression} AS id")
    assert row["id"] == dispatch_id_for(event_id, rule_id)
