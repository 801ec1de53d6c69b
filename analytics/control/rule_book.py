"""The rule book: every rule write (API, pauser, warden, keeper, rewrap) goes through it."""

from __future__ import annotations

import threading
from collections.abc import Callable

from kafka import KafkaProducer

from analytics.control.acked import send_acked
from analytics.control.records import write_record
from analytics.control.rule_ids import next_rule_id
from analytics.control.scope import visible
from analytics.errors import NotFound, StaleVersion
from disparo.access import ApiKey
from disparo.rule_codec import STRICT_KEY, encode_rule
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
        self._lock = threading.Lock()  # check and write as one step within this replica

    def get(self, rule_id: int) -> Rule | None:
        return self.view.get(rule_id)

    def all(self) -> list[Rule]:
        return self.view.all()

    def found(self, rule_id: int, key: ApiKey) -> Rule:
        """The rule, if it exists for this key (another account's rule does not: 404)."""
        rule = self.view.get(rule_id)
        if rule is None or not visible(key, rule.account_id) or not key.sees_rule(rule_id):
            raise NotFound(f"no rule with id {rule_id}; GET /api/v1/rules lists them")
        return rule

    def new_id(self) -> int:
        """An id no rule has, unique across replicas (the rule-ids sequencer)."""
        taken: Callable[[int], bool] = lambda rule_id: self.view.get(rule_id) is not None  # noqa: E731
        return next_rule_id(self.producer, self.topics.rule_ids, taken)

    def write(self, rule: Rule, sent_version: int | None = None) -> None:
        """Publish a rule, secrets sealed, and wait until the rules view holds it.

        Compare-and-set: `rule` must be the next version of the rule as the view holds it
        (and of `sent_version`, the one the caller read, when given), else StaleVersion.
        Two replicas racing past that check both publish; every view keeps the first record
        of a version, so the loser sees another rule held, writes the winner again (so
        compaction keeps it) and answers StaleVersion too.
        """
        with self._lock:
            current = self.view.get(rule.id)
            held = current.version if current is not None else 0
            if rule.version != held + 1 or (sent_version is not None and sent_version != held):
                raise StaleVersion(rule.id, sent_version or rule.version - 1, held)
            value = encode_rule(rule, self.box)
            write_record(self.producer, self.topics.rules, self.view, rule.id, value)
            now = self.view.get(rule.id)
            if now is not None and now != rule:
                again = encode_rule(now, self.box)
                write_record(self.producer, self.topics.rules, self.view, rule.id, again)
                raise StaleVersion(rule.id, rule.version - 1, now.version)

    def delete(self, rule_id: int) -> None:
        """Delete a rule (a tombstone on the compacted topic), seen back by the view."""
        write_record(self.producer, self.topics.rules, self.view, rule_id, None)

    def seal_strictly(self) -> None:
        """Tell every rules view that from now on only bound, sealed values open."""
        record = [(STRICT_KEY, b'{"bound":true}')]
        send_acked(self.producer, self.topics.rules, record, "strict sealing not recorded")

    def reseal(self, rules: list[Rule], progress: Callable[[int], None] | None = None) -> None:
        """Write every rule again, sealed with the current key (after a key change)."""
        for start in range(0, len(rules), 100):
            chunk = rules[start : start + 100]
            records = [(str(r.id).encode(), encode_rule(r, self.box)) for r in chunk]
            send_acked(self.producer, self.topics.rules, records, "rules not resealed")
            if progress is not None:
                progress(start + len(chunk))
