"""route(): an order-events record becomes one job per matching rule, or a refusal."""

from __future__ import annotations

import json

from disparo.schemas import dispatch_id_for
from disparo.topics import MAX_EVENT_BYTES
from dispatcher.routing import route
from tests.factories import event, rule


def test_one_job_per_matching_active_rule() -> None:
    order_event = event(event_type="order.dispatched")
    rules = (
        rule(id=1, event_types=["order.dispatched"]),
        rule(id=2, event_types=["*"]),
        rule(id=3, event_types=["tracking.updated"]),
        rule(id=4, event_types=["*"], active=False),
    )
    routed = route(order_event.model_dump_json().encode(), rules)
    assert routed.refused == ""
    assert [j.rule.rule_id for j in routed.jobs] == [1, 2]
    assert {j.dispatch_id for j in routed.jobs} == {
        dispatch_id_for(order_event.event_id, 1),
        dispatch_id_for(order_event.event_id, 2),
    }
    assert all(j.attempt == 1 and not j.manual for j in routed.jobs)


def test_an_event_no_rule_matches_gives_no_jobs_and_no_refusal() -> None:
    routed = route(event().model_dump_json().encode(), (rule(id=1, event_types=["x.y"]),))
    assert routed.jobs == []
    assert routed.refused == ""


def test_invalid_and_oversized_records_are_refused_with_a_reason() -> None:
    not_json = route(b"{nope", ())
    assert not_json.refused == "invalid_event"
    assert "order event" in not_json.reason
    missing = route(json.dumps({"order_id": "A"}).encode(), ())
    assert missing.refused == "invalid_event"
    assert "event_id" in missing.reason
    empty = route(None, ())
    assert empty.refused == "invalid_event"
    huge = route(b"x" * (MAX_EVENT_BYTES + 1), ())
    assert huge.refused == "too_large"
    assert "over the 1.0 MB limit" in huge.reason
    assert huge.jobs == []
