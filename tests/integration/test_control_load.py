"""The control plane under a heavy ask: a 30-day backfill and ten CSV exports at once."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from tests.integration.conftest import Stack, eventually, order_event
from tests.integration.receiver import Receiver

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]
STORED = 3000
LIVE = 200


def _matched(stack: Stack, rule: dict[str, Any]) -> int:
    body = {"event_types": rule["event_types"], "filters": {}}
    found = stack.http.post(f"{stack.api}/api/v1/rules/dry-run", json=body, timeout=60).json()
    return int(found["matched_events"])


def _task_result(stack: Stack, answer: httpx.Response) -> dict[str, Any]:
    """The result of a bulk request: inline, or polled from its task."""
    assert answer.status_code == 202, answer.text
    body: dict[str, Any] = answer.json()
    if "task_id" not in body:
        return body

    def done() -> dict[str, Any] | None:
        task = stack.http.get(f"{stack.api}{body['status_url']}", timeout=30).json()
        assert task["state"] != "failed", task
        return task["result"] if task["state"] == "done" else None

    result: dict[str, Any] = eventually(done, 120, "the backfill task to end")
    return result


def test_liveness_and_the_sink_hold_while_a_backfill_and_ten_exports_run(
    stack: Stack, receiver: Receiver
) -> None:
    seen = stack.active_rule(name="seen", event_types=["*"], url=f"{receiver.url}/ok")
    events = [order_event(f"LOAD-{n}") for n in range(STORED)]
    for start in range(0, STORED, 500):
        stack.publisher.publish_many(events[start : start + 500])
    eventually(lambda: _matched(stack, seen) == STORED, 90, f"{STORED} stored events")
    eventually(lambda: stack.total() == STORED, 120, f"{STORED} attempts stored")
    late = stack.active_rule(
        name="late", event_types=["order.dispatched"], url=f"{receiver.url}/ok"
    )

    statuses: list[int] = []
    stop = threading.Event()

    def probe() -> None:
        with httpx.Client(timeout=10) as client:
            while not stop.wait(0.2):
                statuses.append(client.get(f"{stack.api}/healthz").status_code)

    prober = threading.Thread(target=probe)
    prober.start()
    exports = [
        *(f"{stack.api}/api/v1/dispatches/export.csv" for _ in range(5)),
        *(f"{stack.api}/api/v1/orders/undelivered/export.csv" for _ in range(5)),
    ]
    try:
        with ThreadPoolExecutor(len(exports) + 1) as pool:
            backfill = pool.submit(
                stack.http.post,
                f"{stack.api}/api/v1/rules/{late['id']}/backfill",
                json={},
                timeout=120,
            )
            downloads = [pool.submit(stack.http.get, url, timeout=120) for url in exports]
            # Events the late rule does not match: the backfill's count stays exact.
            live = [order_event(f"LIVE-{n}", "tracking.updated") for n in range(LIVE)]
            stack.publisher.publish_many(live)  # the sink must keep storing these meanwhile
            result = _task_result(stack, backfill.result())
            answers = [d.result() for d in downloads]
        eventually(
            lambda: len(stack.all_rows(rule_id=seen["id"])) == STORED + LIVE,
            120,
            "every live event's attempt stored",
        )
    finally:
        stop.set()
        prober.join()

    assert result == {"matched_events": STORED, "queued": STORED, "already_dispatched": 0}
    assert [a.status_code for a in answers] == [200] * len(exports)
    dispatch_lines = [len(a.text.splitlines()) for a in answers[:5]]
    assert all(n >= STORED + 1 for n in dispatch_lines), dispatch_lines
    assert all(a.text.startswith("order_id,rule_id,state") for a in answers[5:])
    assert len(statuses) > 0
    assert set(statuses) == {200}, statuses
    eventually(
        lambda: len(stack.all_rows(rule_id=late["id"])) == STORED, 120, "the backfill delivered"
    )
