"""Services restarted on existing data pick up where they left off, without duplicates."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest

from disparo.kafka import make_producer
from disparo.schemas import now_utc
from tests.factories import outcome
from tests.integration.conftest import Stack, eventually, order_events, running_stack
from tests.integration.receiver import Receiver

pytestmark = pytest.mark.integration


def tracebacks(log: str) -> list[str]:
    """Log lines carrying a traceback."""
    return [line for line in log.splitlines() if "Traceback" in line]


def test_analytics_restart_on_stored_history_keeps_counts_exact(
    stack: Stack, receiver: Receiver
) -> None:
    stack.active_rule(name="r", event_types=["*"], url=f"{receiver.url}/ok")
    stack.publisher.publish_many(order_events("BEFORE", 5))
    eventually(lambda: stack.total() == 5, 30, "5 rows before the restart")

    stack.restart("analytics")
    stack.table.wait_http("analytics", f"{stack.api}/readyz", 60)
    stack.publisher.publish_many(order_events("AFTER", 3))
    eventually(lambda: stack.total() == 8, 30, "8 rows after the restart")

    rows = stack.dispatches(limit=50)
    assert len(rows) == 8
    assert len({r["attempt_id"] for r in rows}) == 8
    assert tracebacks(stack.log_tail("analytics", 20000)) == []
    assert len(receiver.on("/ok")) == 8


def test_worker_restart_delivers_later_jobs_once(stack: Stack, receiver: Receiver) -> None:
    stack.active_rule(name="r", event_types=["*"], url=f"{receiver.url}/ok")
    stack.publisher.publish_many(order_events("W1", 4))
    receiver.wait_for("/ok", 4)
    stack.restart("worker")
    stack.publisher.publish_many(order_events("W2", 4))
    got = receiver.wait_for("/ok", 8)
    eventually(lambda: stack.total() == 8, 30, "8 rows")
    assert len(got) == 8
    assert len({r.headers["webhook-id"] for r in got}) == 8


def test_a_repeated_attempt_is_stored_once(stack: Stack) -> None:
    # What a worker that died before committing leaves behind: the same attempt, POSTed
    # again by the next owner seconds later, reported twice on the outcomes topic.
    first = outcome_record("REPEAT-1", seconds_ago=20)
    again = {**first, "dispatched_at": (now_utc() - timedelta(seconds=5)).isoformat()}
    other = outcome_record("REPEAT-2", seconds_ago=5)
    producer = make_producer(stack.settings, client_id="test-repeats")
    for record in (first, again, other, again):
        producer.send(stack.topics.outcomes, key=record["dispatch_id"].encode(),
                      value=json.dumps(record).encode())  # fmt: skip
        producer.flush()
    producer.close()
    rows = stack.rows_eventually(2)
    assert len(rows) == 2, rows
    assert sorted(r["order_id"] for r in rows) == ["REPEAT-1", "REPEAT-2"]
    [kept] = [r for r in rows if r["order_id"] == "REPEAT-1"]
    assert parse_time(kept["dispatched_at"]) == parse_time(str(first["dispatched_at"]))
    metrics = stack.http.get(f"{stack.api}/metrics", timeout=10).text
    assert "disparo_sink_repeats_total 2.0" in metrics
    assert "disparo_sink_rows_total 2.0" in metrics


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def outcome_record(order_id: str, seconds_ago: int) -> dict[str, object]:
    at = (now_utc() - timedelta(seconds=seconds_ago)).replace(microsecond=123000)
    record: dict[str, object] = outcome(order_id, at, rule_id=1000).model_dump(mode="json")
    return record


def test_a_stuck_sink_fails_liveness_and_logs_where_it_waits(
    kafka_bootstrap: str, tmp_path: Path, receiver: Receiver
) -> None:
    stall = {"DISPARO_FAILPOINT": "sink.after_insert=stall", "DISPARO_SINK_STALL_S": "3"}
    with running_stack(kafka_bootstrap, tmp_path, **stall) as stack:
        assert stack.http.get(f"{stack.api}/healthz", timeout=10).json() == {"status": "ok"}
        stack.active_rule(name="r", event_types=["*"], url=f"{receiver.url}/ok")
        stack.publisher.publish_many(order_events("STALL", 3))

        def unhealthy() -> httpx.Response | None:
            answer = stack.http.get(f"{stack.api}/healthz", timeout=10)
            return answer if answer.status_code == 503 else None

        answer = eventually(unhealthy, 30, "/healthz to report the stuck sink")
        assert answer.json()["status"] == "stuck"
        assert "made no progress" in answer.json()["problem"]
        log = stack.log_tail("analytics", 100000)
        assert "the outcomes sink made no progress" in log
        assert "sink.py" in log  # the stacks show where the sink thread waits
