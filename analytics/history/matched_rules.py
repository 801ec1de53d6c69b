"""The active rules an order event matches, as the rules view holds them now (issue 32).

The events sink stores them with each event, so each dispatch is known (and its wait
measured) from the moment its event is stored, before any attempt. A rule counts for the
events published since it became active, as the undelivered-orders queries have it.
"""

from __future__ import annotations

from datetime import datetime

from disparo.matching import matching_rules
from disparo.rules_view import RulesView
from disparo.schemas import OrderEvent, Rule


class MatchedRules:
    """Matches events against their own account's active rules (indexed once per change)."""

    def __init__(self, rules: RulesView) -> None:
        self.rules = rules
        self._generation = -1
        self._by_account: dict[str, list[Rule]] = {}

    def __call__(self, event: OrderEvent, published_at: datetime) -> list[int]:
        """The ids of the rules that want `event`, published at `published_at`."""
        candidates = self._index().get(event.account_id, [])
        return [
            rule.id
            for rule in matching_rules(candidates, event)
            if rule.activated_at is None or rule.activated_at <= published_at
        ]

    def _index(self) -> dict[str, list[Rule]]:
        generation = self.rules.generation
        if generation != self._generation:
            by_account: dict[str, list[Rule]] = {}
            for rule in self.rules.snapshot():
                if rule.active:
                    by_account.setdefault(rule.account_id, []).append(rule)
            self._by_account, self._generation = by_account, generation
        return self._by_account
