"""The control plane's two writers, on a fake producer: the rule book and the job queue."""

from __future__ import annotations

from typing import Any

import pytest

from analytics.control.job_queue import (
    JobQueue,
    backfill_job,
    latest_job,
    release_job,
    resend_job,
    webhook_test_job,
)
from analytics.control.rule_book import RuleBook
from analytics.errors import Conflict, KafkaRefused, NotFound, StaleVersion
from disparo.access import new_key
from disparo.limits import MAX_ATTEMPT
from disparo.rule_codec import decode_rule
from disparo.rules_view import RulesView
from disparo.schemas import Rule
from disparo.secret_box import SecretBox, new_key_text
from disparo.topics import Topics
from tests.factories import event, rule
from tests.fakes import FakeProducer

TOPICS = Topics("t.")


class SeenRules:
    """A rules view that sees each record it is told to wait for (as the real one does)."""

    what = "rule"

    def __init__(self, producer: FakeProducer, box: SecretBox) -> None:
        self.producer = producer
        self.box = box
        self.rules: dict[int, Rule] = {}
        self.waited: list[int] = []

    def wait_for(self, partition: int, offset: int, timeout_s: float) -> None:
        record = self.producer.on(TOPICS.rules)[offset]
        rule_id = int(record.key or b"0")
        self.waited.append(offset)
        if record.value is None:
            self.rules.pop(rule_id, None)
            return
        new, old = decode_rule(record.value, self.box), self.rules.get(rule_id)
        if old is None or RulesView.accepts(self, old, new):  # type: ignore[arg-type]
            self.rules[rule_id] = new

    def get(self, rule_id: int) -> Rule | None:
        return self.rules.get(rule_id)

    def all(self) -> list[Rule]:
        return list(self.rules.values())


def book() -> tuple[RuleBook, FakeProducer, SeenRules]:
    producer = FakeProducer()
    box = SecretBox(new_key_text())
    view = SeenRules(producer, box)
    return RuleBook(producer, TOPICS, view, box), producer, view  # type: ignore[arg-type]


def test_a_rule_is_written_sealed_and_seen_back_before_the_write_returns() -> None:
    rules, producer, view = book()
    written = rule(headers={"Authorization": "Bearer abc"})
    rules.write(written)
    [record] = producer.on(TOPICS.rules)
    assert record.key == b"61856"
    assert written.secret.encode() not in (record.value or b"")
    assert b"Bearer abc" not in (record.value or b"")
    assert view.waited == [0]
    assert rules.get(61856) == written


def test_a_deleted_rule_is_a_tombstone_and_is_gone_from_the_view() -> None:
    rules, producer, _ = book()
    rules.write(rule())
    rules.delete(61856)
    assert [r.value is None for r in producer.on(TOPICS.rules)] == [False, True]
    assert rules.get(61856) is None


def test_another_accounts_rule_is_not_found() -> None:
    rules, _, _ = book()
    rules.write(rule(account_id="acme"))
    _, other = new_key("ops", "admin", "globex")
    _, own = new_key("ops", "admin", "acme")
    assert rules.found(61856, own).id == 61856
    with pytest.raises(NotFound, match="no rule with id 61856"):
        rules.found(61856, other)


def test_new_ids_step_over_taken_ones() -> None:
    rules, producer, _ = book()
    rules.write(rule(id=1000))  # made with an explicit id: the sequencer's first claim is taken
    assert rules.new_id() == 1001
    assert len(producer.on(TOPICS.rule_ids)) == 2  # offsets 0 (taken) and 1


def test_reseal_writes_every_rule_once_and_reports_progress() -> None:
    rules, producer, _ = book()
    many = [rule(id=2000 + n) for n in range(250)]
    done: list[int] = []
    rules.reseal(many, done.append)
    assert [int(r.key or b"0") for r in producer.on(TOPICS.rules)] == [r.id for r in many]
    assert done == [100, 200, 250]


def test_a_write_kafka_refuses_is_a_kafka_refused_error() -> None:
    rules, producer, _ = book()
    producer.down = True
    with pytest.raises(KafkaRefused, match="rule not saved, Kafka is unavailable"):
        rules.write(rule())


def test_jobs_go_to_the_resend_topic_unless_told_keyed_by_order() -> None:
    producer = FakeProducer()
    queue = JobQueue(producer, TOPICS)
    first = backfill_job(event(order_id="A-1"), rule())
    again = latest_job(event(order_id="B-2"), rule(), attempt=3)
    queue.queue([again])
    queue.dispatch([first])
    queue.queue([])  # nothing to send: nothing sent
    assert [(s.topic, s.key) for s in producer.sent] == [
        (TOPICS.resend, b"B-2"),
        (TOPICS.dispatch_jobs, b"A-1"),
    ]
    [resent] = producer.jobs(TOPICS.resend)
    assert (resent.attempt, resent.manual, resent.resend_id is not None) == (3, True, True)
    [dispatched] = producer.jobs(TOPICS.dispatch_jobs)
    assert (dispatched.attempt, dispatched.manual, dispatched.event.order_id) == (1, False, "A-1")


def test_a_test_webhook_has_its_own_dispatch_and_is_marked_test() -> None:
    job = webhook_test_job(rule(), event())
    assert (job.test, job.manual, job.attempt) == (True, True, 1)


def _row(**changes: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "rule": 61856,
        "dispatch_id": "d-1",
        "last_attempt": 2,
        "last_event": event().model_dump_json(),
    }
    return fields | changes


def test_a_resend_job_is_the_next_attempt_of_the_stored_dispatch() -> None:
    job = resend_job(_row(), rule())
    assert (job.dispatch_id, job.attempt, job.manual) == ("d-1", 3, True)


@pytest.mark.parametrize(
    ("row", "the_rule", "why"),
    [
        (_row(), None, "rule 61856 of dispatch d-1 no longer exists"),
        (_row(last_event=""), rule(), "stored before events were kept"),
        (_row(last_attempt=MAX_ATTEMPT), rule(), f"already had {MAX_ATTEMPT} attempts"),
        (_row(last_event="{}"), rule(), "stored event of d-1 is unreadable"),
    ],
)
def test_a_resend_that_cannot_be_made_says_why(
    row: dict[str, Any], the_rule: Rule | None, why: str
) -> None:
    with pytest.raises(Conflict, match=why):
        resend_job(row, the_rule)


def test_a_notification_resend_needs_no_rule() -> None:
    job = resend_job(_row(rule=0), None)
    assert job.rule.rule_id == 0


def test_a_released_job_is_the_same_dispatch_for_the_rule_as_it_is_now() -> None:
    stored = event()
    row = {"dispatch_id": "d-9", "attempt": 1, "event_json": stored.model_dump_json()}
    job = release_job(row, rule(version=4))
    assert (job.dispatch_id, job.attempt, job.manual, job.rule.version) == ("d-9", 1, False, 4)


def test_jobs_kafka_refuses_are_a_kafka_refused_error() -> None:
    producer = FakeProducer(down=True)
    with pytest.raises(KafkaRefused, match="jobs not queued"):
        JobQueue(producer, TOPICS).queue([backfill_job(event(), rule())])


def test_a_test_webhook_never_takes_a_real_dispatch_s_event_id() -> None:
    real = event()
    job = webhook_test_job(rule(), real)
    assert job.event.event_id != real.event_id
    assert job.dispatch_id != backfill_job(real, rule()).dispatch_id
    assert (job.event.order_id, job.event.payload) == (real.order_id, real.payload)


def test_a_write_based_on_an_older_version_is_refused_naming_the_current_one() -> None:
    rules, producer, _ = book()
    first = rule()
    rules.write(first)
    rules.write(first.changed(name="second"), sent_version=1)
    with pytest.raises(StaleVersion) as stale:
        rules.write(first.changed(name="from a stale read"))
    assert stale.value.current_version == 2
    with pytest.raises(StaleVersion, match="version 2, not 1"):
        rules.write(rules.get(61856).changed(name="x"), sent_version=1)  # type: ignore[union-attr]
    assert len(producer.on(TOPICS.rules)) == 2  # nothing written for either
    assert rules.get(61856).name == "second"  # type: ignore[union-attr]


def test_of_two_racing_writes_the_first_in_the_log_holds_and_the_loser_rewrites_it() -> None:
    rules, producer, view = book()
    first = rule()
    rules.write(first)
    winner = first.changed(secret=rule().secret.replace("A", "B"), name="rotated elsewhere")
    wait = view.wait_for

    def another_replica_wrote_first(partition: int, offset: int, timeout_s: float) -> None:
        view.rules[61856] = winner  # its record came before ours in the log
        view.wait_for = wait  # type: ignore[method-assign]
        wait(partition, offset, timeout_s)

    view.wait_for = another_replica_wrote_first  # type: ignore[method-assign]
    with pytest.raises(StaleVersion):
        rules.write(first.changed(name="edited from version 1"))
    assert rules.get(61856) == winner  # every view ignores the loser's record
    last = producer.on(TOPICS.rules)[-1]
    assert decode_rule(last.value or b"", view.box) == winner  # compaction keeps the winner
