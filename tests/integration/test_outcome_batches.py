"""The outcome-batch contract on the real broker and chdb: every attempt stored once."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest

from consumers.outcome_batches import OutcomeBatches
from disparo.kafka import make_producer
from disparo.outcome_batch import OWNER_HEADER, REPLAY_HEADER, header, row_line
from disparo.schemas import AttemptOutcome, now_utc
from tests.factories import outcome
from tests.integration.conftest import (
    DISPARO,
    Stack,
    eventually,
    every_record,
    order_events,
    read_all,
)
from tests.integration.receiver import Receiver

pytestmark = pytest.mark.integration


def metric(stack: Stack, name: str) -> float:
    text = stack.http.get(f"{stack.api}/metrics", timeout=10).text
    found = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def send_batch(
    producer: Any, topic: str, owner: str, partition: int, attempts: list[AttemptOutcome]
) -> None:
    """One batch record as a worker that owns job `partition` writes it."""
    batches = OutcomeBatches(owner=owner)
    for done in attempts:
        batches.add(partition, done.attempt_id, row_line(done))
    for key, value, headers in batches.take():
        producer.send(topic, key=key, value=value, headers=headers)
    producer.flush()


def test_batches_and_single_records_store_each_attempt_once(stack: Stack) -> None:
    at = now_utc() - timedelta(seconds=30)
    a, b, c, d, e = (outcome(f"MIX-{n}", at + timedelta(seconds=n), rule_id=1000) for n in range(5))
    producer = make_producer(stack.settings, client_id="test-batches")
    topic = stack.topics.outcomes
    send_batch(producer, topic, "w1", 0, [a, b])
    producer.send(topic, key=c.dispatch_id.encode(), value=c.model_dump_json().encode())
    batches = OutcomeBatches(owner="w1")  # w1 read b's job again after a rewind: marked
    batches.mark(b.attempt_id)
    for done in (b, d):
        batches.add(0, done.attempt_id, row_line(done))
    [(key, value, headers)] = batches.take()
    producer.send(topic, key=key, value=value, headers=headers)
    producer.send(topic, key=key, value=value, headers=headers)  # the same batch twice
    send_batch(producer, topic, "w2", 0, [a, c])  # a second owner redid a and c
    send_batch(producer, topic, "w1", 0, [d, e])  # the first, still running, redid d
    producer.close()

    rows = stack.rows_eventually(5)
    eventually(lambda: metric(stack, "disparo_sink_repeats_total") == 6, 30, "6 repeats")
    rows = stack.all_rows()
    assert sorted(r["order_id"] for r in rows) == [f"MIX-{n}" for n in range(5)]
    assert {r["attempt_id"] for r in rows} == {o.attempt_id for o in (a, b, c, d, e)}
    assert metric(stack, "disparo_sink_rows_total") == 5
    assert stack.total() == 5


def test_an_unreadable_row_is_dead_lettered_and_its_batch_mates_stored(stack: Stack) -> None:
    at = now_utc() - timedelta(seconds=10)
    good = [outcome(f"REF-{n}", at, rule_id=1000) for n in range(3)]
    lines = [row_line(o) for o in good]
    bad = lines[1].replace(good[1].attempt_id.encode(), b"not-a-uuid")
    batches = OutcomeBatches(owner="w1")
    for line in (lines[0], bad, lines[2]):
        batches.add(0, "", line)
    producer = make_producer(stack.settings, client_id="test-refused")
    [(key, value, headers)] = batches.take()
    producer.send(stack.topics.outcomes, key=key, value=value, headers=headers)
    producer.send(stack.topics.outcomes, key=key, value=b"{not json", headers=headers)
    producer.flush()
    producer.close()

    rows = stack.rows_eventually(2)
    assert sorted(r["order_id"] for r in rows) == ["REF-0", "REF-2"]
    dead = read_all(stack.settings.kafka_bootstrap, stack.topics.dead_letter, 2)
    reasons = sorted(dict(r.headers)["disparo.reason"].decode() for r in dead)
    assert len(reasons) == 2, reasons
    assert "1 unreadable row(s) of a batch" in reasons[0]
    assert "row 2: " in reasons[0]
    assert "attempt_id" in reasons[0]
    assert "not JSON lines" in reasons[1]
    assert {r.value for r in dead} == {value, b"{not json"}  # the original bytes, kept
    assert metric(stack, "disparo_sink_insert_failures_total") >= 1
    assert stack.total() == 2


def test_a_worker_killed_after_its_batch_and_before_its_commit_loses_and_doubles_none(
    stack: Stack, receiver: Receiver
) -> None:
    stack.active_rule(name="r", event_types=["*"], url=f"{receiver.url}/ok")
    stack.table.stop("worker", grace_s=20)
    crash = {**stack.env, "DISPARO_FAILPOINT": "worker.after_outcomes=exit"}
    stack.table.start("worker", [DISPARO, "worker"], crash)
    stack.publisher.publish_many(order_events("BATCH", 60))
    # The first batch is written and acknowledged, then the worker dies before committing.
    eventually(lambda: stack.table.pid("worker") is None, 60, "the failpoint to fire")
    posted_before = len(receiver.on("/ok"))
    first = every_record(stack.settings.kafka_bootstrap, stack.topics.outcomes)
    reported = sum(r.value.count(b"\n") for r in first)
    assert 0 < reported <= posted_before
    stack.table.start("worker", [DISPARO, "worker"], stack.env)

    # Nothing was committed: the second worker POSTs all 60 again, and reports each again.
    receiver.wait_for("/ok", posted_before + 60, timeout_s=60)
    eventually(lambda: metric(stack, "disparo_sink_repeats_total") == reported, 30, "repeats")
    rows = stack.rows_eventually(60)
    assert receiver.webhook_ids("/ok") == {r["dispatch_id"] for r in rows}
    written = every_record(stack.settings.kafka_bootstrap, stack.topics.outcomes)
    later = [
        r
        for r in written
        if header(r.headers, OWNER_HEADER) != header(first[0].headers, OWNER_HEADER)
    ]
    assert sum(r.value.count(b"\n") for r in later) == 60
    assert all(header(r.headers, REPLAY_HEADER) == b"1" for r in later)
    rows = stack.all_rows()
    assert len(rows) == 60
    assert len({r["attempt_id"] for r in rows}) == 60
    assert stack.total() == 60
