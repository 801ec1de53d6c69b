"""Outcome batches: the rows a worker writes, how they split, and when the sink looks up."""

from __future__ import annotations

import pytest

from analytics.history import schema
from analytics.history.repeats import Owners
from analytics.history.sink import row_of, with_kafka_columns
from consumers.outcome_batches import OutcomeBatches, Replays
from disparo.errors import InvalidMessage
from disparo.outcome_batch import (
    BATCH_FORMAT,
    BATCH_HEADER,
    BATCH_ID_HEADER,
    OWNER_HEADER,
    REPLAY_HEADER,
    ROW_FIELDS,
    checked_row,
    header,
    lines_of,
    loose_row,
    outcome_of,
    row_line,
    split,
)
from disparo.schemas import now_utc
from tests.factories import event, outcome


def test_a_row_line_is_the_table_row_without_the_kafka_columns() -> None:
    columns = [name for name, _ in schema.ATTEMPT_COLUMNS]
    assert list(ROW_FIELDS) == [c for c in columns if not c.startswith("kafka_")]
    done = outcome("ORD-1", now_utc(), "failure", error="HTTP 503", retry_tier="5s")
    line = row_line(done)
    assert line.endswith(b"}\n")
    assert line.count(b"\n") == 1
    with_kafka = loose_row(with_kafka_columns(line, 3, 41))
    expected = row_of(done, 3, 41)
    assert with_kafka["kafka_partition"] == 3
    assert with_kafka["kafka_offset"] == 41
    assert set(with_kafka) == set(expected)
    assert with_kafka["error"] == "HTTP 503"
    assert with_kafka["http_status"] == 503


def test_the_waiter_gets_back_the_outcome_a_row_records() -> None:
    sent = event(order_id="ORD-2")
    done = outcome("ORD-2", now_utc(), request_headers={"x-a": "1"}, event=sent, order_status=None)
    back = outcome_of(row_line(done))
    assert back.attempt_id == done.attempt_id
    assert back.event == sent
    assert back.request_headers == {"x-a": "1"}
    assert back.order_status is None
    assert back.http_status == 200
    assert back.error is None


def test_a_row_that_clickhouse_would_refuse_is_named_by_its_field() -> None:
    line = row_line(outcome("ORD-3", now_utc())).replace(b'"status":"success"', b'"status":"ok"')
    with pytest.raises(InvalidMessage, match="status"):
        checked_row(line)
    assert checked_row(row_line(outcome("ORD-3", now_utc())))["order_id"] == "ORD-3"


def test_lines_of_refuses_what_is_not_a_batch() -> None:
    headers = [(BATCH_HEADER, BATCH_FORMAT)]
    assert lines_of(b'{"a":1}\n{"b":2}\n', headers) == [b'{"a":1}\n', b'{"b":2}\n']
    with pytest.raises(InvalidMessage, match="unknown format"):
        lines_of(b'{"a":1}\n', [(BATCH_HEADER, b"attempts/9")])
    with pytest.raises(InvalidMessage, match="JSON lines"):
        lines_of(b"{not json", headers)


def test_split_keeps_each_record_under_the_limit_and_every_line_once() -> None:
    lines = [b"x" * 40 + b"\n" for _ in range(10)]
    values = split(lines, limit=100)
    assert [len(v) for v in values] == [82, 82, 82, 82, 82]
    assert b"".join(values) == b"".join(lines)
    assert split([b"y" * 300 + b"\n"], limit=100) == [b"y" * 300 + b"\n"]


def test_batches_go_per_job_partition_and_only_marked_ones_say_replay() -> None:
    batches = OutcomeBatches(owner="w1")
    first, second, third = (outcome(f"O-{n}", now_utc()) for n in range(3))
    batches.mark(second.attempt_id)
    assert not batches.pending()
    batches.add(0, first.attempt_id, row_line(first))
    assert batches.pending()
    batches.add(4, second.attempt_id, row_line(second))
    batches.add(4, third.attempt_id, row_line(third))
    assert len(batches) == 3
    records = {key: (value, dict(headers)) for key, value, headers in batches.take()}
    assert not batches.pending()
    assert set(records) == {b"jobs-0", b"jobs-4"}
    assert records[b"jobs-4"][0].count(b"\n") == 2
    assert records[b"jobs-0"][1][OWNER_HEADER] == b"w1"
    assert REPLAY_HEADER not in records[b"jobs-0"][1]
    assert records[b"jobs-4"][1][REPLAY_HEADER] == b"1"
    assert batches.take() == []
    assert len(batches) == 0
    batches.add(4, second.attempt_id, row_line(second))  # the mark was used up
    [(_, _, headers)] = batches.take()
    assert header(headers, REPLAY_HEADER) is None


def test_replays_are_the_records_below_the_end_first_seen_and_those_read_again() -> None:
    replays = Replays()
    assert replays.may_repeat("p0", 10, end=13)  # a previous owner may have read 10..12
    assert replays.may_repeat("p0", 12, end=20)
    assert not replays.may_repeat("p0", 13, end=20)
    assert not replays.may_repeat("p0", 19, end=25)
    assert replays.may_repeat("p0", 15, end=25)  # read again after a rewind
    assert replays.may_repeat("p0", 24, end=25)
    assert not replays.may_repeat("p0", 25, end=26)
    assert replays.may_repeat("p1", 0, end=None)  # the end not known yet: assume the worst
    assert replays.may_repeat("p1", 1, end=5)
    assert not replays.may_repeat("p1", 5, end=6)
    replays.keep_only({"p1"})
    assert replays.may_repeat("p0", 30, end=31)  # owned afresh: below the end again


def test_the_sink_looks_up_first_sightings_new_owners_and_batches_seen_twice() -> None:
    owners = Owners(mixed_s=600)  # ten minutes, for the test
    assert owners.must_check(b"jobs-0", b"w1", b"b1", now=0)  # first sighting
    assert not owners.must_check(b"jobs-0", b"w1", b"b2", now=1)  # steady state
    assert owners.must_check(b"jobs-0", b"w1", b"b2", now=2)  # the same batch again
    assert owners.must_check(b"jobs-1", b"w1", b"c1", now=2)
    assert not owners.must_check(b"jobs-1", b"w1", b"c2", now=3)
    assert owners.must_check(b"jobs-0", b"w2", b"b3", now=10)  # a new owner
    assert owners.must_check(b"jobs-0", b"w2", b"b4", now=20)  # both wrote it lately
    assert owners.must_check(b"jobs-0", b"w1", b"b5", now=30)  # the old one, still running
    assert owners.must_check(b"jobs-0", b"w1", b"b6", now=600)
    assert not owners.must_check(b"jobs-0", b"w1", b"b7", now=631)  # ten quiet minutes later
    assert not owners.must_check(b"jobs-1", b"w1", b"c3", now=631)
    owners.forget()
    assert owners.must_check(b"jobs-1", b"w1", b"c4", now=632)


def test_a_batch_split_in_records_gives_each_record_its_own_id() -> None:
    batches = OutcomeBatches(owner="w1")
    for n in range(3):
        done = outcome(f"O-{n}", now_utc(), response_excerpt="x" * 600_000)
        batches.add(2, done.attempt_id, row_line(done))
    records = batches.take()
    assert len(records) == 3
    assert len({header(headers, BATCH_ID_HEADER) for _, _, headers in records}) == 3
