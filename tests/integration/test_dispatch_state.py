"""Each dispatch's state on real ClickHouse, kept by views as the sinks insert, and the
receipt SLA read from it (issue 32)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from analytics.control import receipt_sla
from analytics.history import queries, schema, sla_queries
from analytics.history.event_sink import event_row
from analytics.history.sink import row_of
from analytics.history.sla_queries import SlaScope
from analytics.history.store import Store
from disparo.accounts import Slo
from disparo.schemas import OrderEvent, dispatch_id_for
from tests.factories import event, outcome

pytestmark = pytest.mark.integration
T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
RULE = 7101
SLO = Slo(p95_seconds=2, max_undelivered_seconds=60)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


class Story:
    """One account's events and attempts, written as the two sinks would."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.account = f"sla-{uuid.uuid4().hex[:8]}"
        self.events: list[dict[str, Any]] = []
        self.attempts: list[dict[str, Any]] = []

    def event(self, order_id: str, occurred: float, published: float) -> OrderEvent:
        e = event(order_id=order_id, account_id=self.account, occurred_at=at(occurred))
        self.events.append(event_row(e, at(published), 0, len(self.events), (), [RULE]))
        return e

    def attempt(self, e: OrderEvent, start: float, status: str, ms: int, **more: Any) -> None:
        o = outcome(
            e.order_id, at(start), status, dispatch_id=dispatch_id_for(e.event_id, RULE),
            event_id=str(e.event_id), rule_id=RULE, account_id=self.account, event=e,
            duration_ms=ms, **more,
        )  # fmt: skip
        self.attempts.append(row_of(o, 0, len(self.attempts)))

    def store_events(self, token: str = "e") -> None:
        self.store.insert(schema.EVENTS_TABLE, self.events, f"{self.account}/{token}")

    def store_attempts(self, token: str = "a") -> None:
        self.store.insert(schema.TABLE, self.attempts, f"{self.account}/{token}")

    def scope(self) -> SlaScope:
        period = queries.Period(T0 - timedelta(minutes=5), T0 + timedelta(minutes=5))
        return SlaScope(period, {self.account: SLO}, self.account)


def told(store: Store) -> Story:
    """Six dispatches, each a different case."""
    story = Story(store)
    fast = story.event("O-fast", 0.0, 0.1)  # 100 ms producer, 200 platform, 200 customer
    story.attempt(fast, 0.3, "success", 200)
    late = story.event("O-late", -60.0, 0.0)  # published a minute after it happened
    story.attempt(late, 0.1, "success", 50)
    slow = story.event("O-slow", 0.0, 0.0)  # 503 after 3 s, then 200 after 3 s more
    story.attempt(slow, 0.1, "failure", 3000, final=False, retry_tier="5s")
    story.attempt(slow, 8.1, "success", 3000, attempt=2)
    story.event("O-never", 0.0, 0.0)  # matched, never tried: the platform's
    failed = story.event("O-failed", 0.0, 0.0)  # tried, failed for good: the customer's
    story.attempt(failed, 0.2, "failure", 10)
    older = story.event("O-older", 0.0, 0.0)  # a newer status got there: nothing owed
    story.attempt(older, 0.2, "superseded", 0)
    return story


def test_each_dispatch_is_one_row_whatever_order_the_sinks_store_in_and_however_often(
    store: Store,
) -> None:
    story = told(store)
    story.store_attempts()  # the outcomes sink ran ahead of the events sink
    story.store_events()
    story.store_attempts("again")  # a replay after a crash: the same rows, another insert
    story.store_events("again")
    rows = store.select(
        f"SELECT order_id, published_at, first_attempt_at, first_ok_at, settled, failed "
        f"FROM {store.database}.{schema.DISPATCH_STATE_TABLE} FINAL "
        "WHERE account_id = {a:String} ORDER BY order_id",
        {"a": story.account},
    )
    by_order = {r["order_id"]: r for r in rows}
    assert sorted(by_order) == ["O-failed", "O-fast", "O-late", "O-never", "O-older", "O-slow"]
    slow = by_order["O-slow"]
    assert _time(slow["first_attempt_at"]) == at(0.1)
    assert _time(slow["first_ok_at"]) == at(11.1)  # the second attempt's 2xx came back
    assert by_order["O-never"]["first_attempt_at"] is None
    assert (by_order["O-failed"]["failed"], by_order["O-older"]["settled"]) == (1, 1)
    assert all(_time(r["published_at"]) >= at(0) for r in rows)


def test_the_sla_splits_each_lag_and_blames_the_longest_stage(store: Store) -> None:
    story = told(store)
    story.store_events()
    story.store_attempts()
    now = at(120)  # the open ones are owed for 120 s, past the 60 s allowed
    report = receipt_sla.report(store, story.scope(), now)
    assert report["received"] == 3
    assert report["open"] == 2
    assert report["stages"]["producer"] == {"p50": 0.1, "p95": 60.0, "p99": 60.0}
    assert report["stages"]["customer"] == {"p50": 0.2, "p95": 11.0, "p99": 11.0}
    assert report["stages"]["total"]["p50"] == 11.1
    # In time: only O-fast of 3 received and 2 owed past their limit.
    assert report["compliance"] == 0.2
    assert report["breaches"] == 4
    assert report["blame"] == {"producer": 1, "platform": 1, "customer": 2}
    items = receipt_sla.breaches(store, story.scope(), now, 10, 0)
    assert [(i["order_id"], i["stage"], i["open"], i["lag_s"]) for i in items] == [
        ("O-failed", "customer", True, 120.0),
        ("O-never", "platform", True, 120.0),
        ("O-late", "producer", False, 60.15),
        ("O-slow", "customer", False, 11.1),
    ]


def _time(value: Any) -> datetime:
    """A stored time as an aware datetime (the stores answer UTC text)."""
    found = datetime.fromisoformat(str(value))
    return found if found.tzinfo else found.replace(tzinfo=UTC)


def test_the_watch_counts_each_dispatch_in_the_slice_it_was_judged_in(store: Store) -> None:
    story = told(store)
    story.store_events()
    story.store_attempts()
    edges = [at(-1), at(30), at(61), at(100)]
    sql, params = sla_queries.slices(store.database, {story.account: SLO}, edges, at(120))
    [row] = store.select(sql, params)
    # Received late or in time when the 2xx came (O-late: when it had been owed 60 s, at
    # T0); never and failed once owed 60 s, at T0 + 60; O-older is owed nothing.
    assert [(row[f"n{i}"], row[f"b{i}"]) for i in range(3)] == [(3, 2), (2, 2), (0, 0)]
