"""The rules the events sink stores with each event: its account's active rules that want
it, counted from when each became active."""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace
from typing import Any

from analytics.history.matched_rules import MatchedRules
from disparo.schemas import now_utc
from tests.factories import event, rule


def view(*rules: Any) -> Any:
    return SimpleNamespace(generation=1, snapshot=lambda: rules)


def test_an_event_matches_its_own_accounts_active_rules_since_they_became_active() -> None:
    now = now_utc()
    rules = view(
        rule(id=1, account_id="a", event_types=["*"]),
        rule(id=2, account_id="a", event_types=["tracking.updated"]),
        rule(id=3, account_id="b", event_types=["*"]),
        rule(id=4, account_id="a", event_types=["*"], active=False),
        rule(id=5, account_id="a", event_types=["*"], activated_at=now + timedelta(seconds=1)),
        rule(id=6, account_id="a", event_types=["*"], filters={"payload.carrier": ["acme"]}),
    )
    matched = MatchedRules(rules)
    assert matched(event(account_id="a"), now) == [1, 6]
    assert matched(event(account_id="a", payload={"carrier": "x"}), now) == [1]
    assert matched(event(account_id="a"), now + timedelta(seconds=2)) == [1, 5, 6]
    assert matched(event(account_id="c"), now) == []


def test_a_change_of_the_rules_is_seen_at_the_next_event() -> None:
    rules = view(rule(id=1, account_id="a", event_types=["*"]))
    matched = MatchedRules(rules)
    assert matched(event(account_id="a"), now_utc()) == [1]
    rules.snapshot = lambda: (rule(id=2, account_id="a", event_types=["*"]),)
    assert matched(event(account_id="a"), now_utc()) == [1]  # same generation: same index
    rules.generation = 2
    assert matched(event(account_id="a"), now_utc()) == [2]
