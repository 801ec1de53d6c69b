"""What an order's story says of each rule, from its attempts or from the rule as it is now."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from analytics.control.order_story import verdict
from tests.factories import event, rule

PUBLISHED = "2026-12-07T12:00:00.000Z"


def _attempt(status: str, error: str | None = None) -> dict[str, Any]:
    return {"status": status, "error": error}


def test_attempts_win_over_the_rule_as_it_is_now() -> None:
    gone = rule(event_types=["other.type"], active=False)  # changed since it fired
    e = event()
    sent = verdict(gone, e, PUBLISHED, [_attempt("failure", "HTTP 503"), _attempt("success")])
    assert (sent["outcome"], sent["why"]) == ("dispatched", "2 attempt(s), the last a success")
    held = verdict(gone, e, PUBLISHED, [_attempt("held", "rule 7 is paused")])
    assert (held["outcome"], held["why"]) == ("held", "rule 7 is paused")
    newer = verdict(gone, e, PUBLISHED, [_attempt("superseded", "a newer event replaced it")])
    assert newer["outcome"] == "superseded"
    older = verdict(gone, e, PUBLISHED, [_attempt("regressed", "'in_transit' is older")])
    assert (older["outcome"], older["why"]) == ("regressed", "'in_transit' is older")
    released = verdict(gone, e, PUBLISHED, [_attempt("held"), _attempt("success")])
    assert released["outcome"] == "dispatched"


def test_without_attempts_the_rule_now_says_why() -> None:
    e = event(event_type="order.dispatched", payload={"carrier": "correios"})
    picky = rule(event_types=["*"], filters={"payload.carrier": ["acme"]})
    assert verdict(picky, e, PUBLISHED, []) == {
        "rule_id": picky.id,
        "rule_name": picky.name,
        "outcome": "not_matched",
        "why": 'payload.carrier is "correios", rule wants ["acme"]',
    }
    off = verdict(rule(event_types=["*"], active=False), e, PUBLISHED, [])
    assert (off["outcome"], off["why"]) == ("inactive", "the rule is inactive")
    later = rule(event_types=["*"], activated_at=datetime(2026, 12, 8, tzinfo=UTC))
    assert verdict(later, e, PUBLISHED, [])["outcome"] == "inactive"
    paused = verdict(
        rule(event_types=["*"], paused=True, paused_reason="maintenance"), e, PUBLISHED, []
    )
    assert (paused["outcome"], paused["why"]) == ("held", "the rule is paused: maintenance")
    waiting = verdict(rule(event_types=["*"]), e, PUBLISHED, [])
    assert waiting["outcome"] == "dispatched"
    assert "no attempt stored yet" in waiting["why"]
