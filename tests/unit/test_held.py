"""Held dispatches as data: the job a release sends, the row a discard leaves."""

from __future__ import annotations

from datetime import timedelta

from analytics.control.held_keeper import discarded_outcome
from analytics.control.job_queue import release_job
from disparo.schemas import attempt_id_for, dispatch_id_for, now_utc
from tests.factories import event, rule


def held_row() -> dict[str, object]:
    held_event = event(order_id="H-1")
    dispatch_id = dispatch_id_for(held_event.event_id, 61856)
    return {
        "attempt_id": attempt_id_for(dispatch_id, 2, "held/x"),
        "dispatch_id": dispatch_id,
        "attempt": "2",  # chdb answers 64-bit and small integers as JSON numbers or strings
        "order_id": "H-1",
        "order_status": "",
        "event_id": str(held_event.event_id),
        "event_type": held_event.event_type,
        "rule_id": "61856",
        "url": "https://hooks.example.com/in",
        "account_id": "default",
        "dispatched_at": (now_utc() - timedelta(days=1)).isoformat(),
        "event_json": held_event.model_dump_json(),
    }


def test_a_released_dispatch_keeps_its_id_and_attempt_and_names_the_rule_as_it_is_now() -> None:
    row = held_row()
    current = rule(paused=False).changed(url="https://new.example.com/in")
    job = release_job(row, current)
    assert (job.dispatch_id, job.attempt, job.manual) == (row["dispatch_id"], 2, False)
    assert (job.rule.rule_id, job.rule.version) == (61856, 2)
    assert job.event.model_dump_json() == row["event_json"]
    assert job.seq is None  # its place is where the release puts it


def test_a_discarded_dispatch_is_a_final_failure_with_the_reason_and_a_row_of_its_own() -> None:
    row = held_row()
    gone = discarded_outcome(row, "discarded while held by ops")
    assert (gone.status, gone.reason, gone.final, gone.manual) == (
        "failure",
        "discarded",
        True,
        False,
    )
    assert gone.error == "discarded while held by ops"
    assert gone.attempt_id not in (row["attempt_id"], attempt_id_for(gone.dispatch_id, 2, None))
    assert (gone.order_id, gone.order_status, gone.rule_id) == ("H-1", None, 61856)
