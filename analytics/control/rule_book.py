"""The rule book: every rule write (API, pauser, warden, keeper, rewrap) goes through it."""

from __future__ import annotations

from collections.abc import Callable

from kafka import KafkaProducer

from analytics.control.access import ApiKey
from analytics.control.acked import send_acked
from analytics.control.records import write_record
from analytics.control.rule_ids import next_rule_id
from analytics.control.scope import visible
from analytics.errors import NotFound
from disparo.rule_codec import encode_rule
from disparo.rules_view import RulesView
from disparo.schemas import Rule
from disparo.secret_box import SecretBox
from disparo.topics import Topics


class RuleBook:
    """The rules topic's one writer in analytics: secrets sealed, each write seen back."""

    def __init__(
        self, producer: KafkaProducer, topics: Topics, view: RulesView, box: SecretBox
    ) -> None:
        self.producer = producer
        self.topics = topics
        self.view = view
        self.box = box

    def get(self, rule_id: int) -> Rule | None:
        return self.view.get(rule_id)

    def all(self) -> list[Rule]:
        return self.view.all()

    def found(self, rule_id: int, key: ApiKey) -> Rule:
        """The rule, if it exists for this key (another account's rule does not: 404)."""
        rule = self.view.get(rule_id)
        if rule is None or not visible(key, rule.account_id):
            raise NotFound(f"no rule with id {rule_id}; GET /api/v1/rules lists them")
        return rule

    def new_id(self) -> int:
        """An id no rule has, unique across replicas (the rule-ids sequencer)."""
        taken: Callable[[int], bool] = lambda rule_id: self.view.get(rule_id) is not None  # noqa: E731
        return next_rule_id(self.producer, self.topics.rule_ids, taken)

    def write(self, rule: Rule) -> None:
        """Publish a rule, secrets sealed, and wait until the rules view holds it."""
        value = encode_rule(rule, self.box)
        write_record(self.producer, self.topics.rules, self.view, rule.id, value)

    def delete(self, rule_id: int) -> None:
        """Delete a rule (a tombstone on the compacted topic), seen back by the view."""
        write_record(self.producer, self.topics.rules, self.view, rule_id, None)

    def reseal(self, rules: list[Rule], progress: Callable[[int], None] | None = None) -> None:
        """Write every rule again, sealed with the current key (after a key change)."""
        for start in range(0, len(rules), 100):
            chunk = rules[start : start + 100]
            records = [(str(r.id).encode(), encode_rule(r, self.box)) for r in chunk]
            send_acked(self.producer, self.topics.rules, records, "rules not resealed")
            if progress is not None:
                progress(start + len(chunk))
