"""The management API on the real stack: ingest, rules, history, and 4xx for bad input."""

from __future__ import annotations

import json
import subprocess
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from disparo.schemas import generate_secret, now_utc
from tests.integration.conftest import DISPARO, Stack, eventually, order_event
from tests.integration.receiver import Receiver

pytestmark = pytest.mark.integration


def test_http_ingest_accepts_a_list_and_every_event_is_delivered(
    stack: Stack, receiver: Receiver
) -> None:
    stack.active_rule(
        name="invoices", event_types=["pre_invoice.created"], url=f"{receiver.url}/ok"
    )
    events = [order_event(f"ORD-H-{i}", "pre_invoice.created") for i in range(5)]
    response = stack.http.post(f"{stack.api}/api/v1/events", json=events, timeout=30)
    assert response.status_code == 202
    assert response.json()["accepted"] == 5
    got = receiver.wait_for("/ok", 5)
    eventually(lambda: len(stack.dispatches(limit=10)) == 5, 30, "5 attempt rows")
    rows = stack.dispatches(limit=10)
    assert {r.headers["webhook-id"] for r in got} == {r["dispatch_id"] for r in rows}
    assert {r["order_id"] for r in rows} == {f"ORD-H-{i}" for i in range(5)}


def test_pagination_walks_every_row_once_with_the_cursor(stack: Stack, receiver: Receiver) -> None:
    stack.active_rule(name="pages", event_types=["*"], url=f"{receiver.url}/ok")
    posted = stack.http.post(
        f"{stack.api}/api/v1/events", json=[order_event(f"P-{i}") for i in range(7)], timeout=30
    )
    assert posted.status_code == 202, posted.text
    assert len(stack.rows_eventually(7)) == 7
    seen, cursor = [], None
    while True:
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = stack.http.get(f"{stack.api}/api/v1/dispatches", params=params, timeout=10).json()
        seen.extend(item["attempt_id"] for item in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 7
    assert len(set(seen)) == 7


def test_rule_secret_is_shown_once_then_masked_and_rules_can_be_deleted(stack: Stack) -> None:
    secret = generate_secret()
    created = stack.create_rule(
        name="s", event_types=["*"], url="https://example.com/h", secret=secret
    )
    assert created["secret"] == secret
    assert created["id"] >= 1000
    fetched = stack.http.get(f"{stack.api}/api/v1/rules/{created['id']}", timeout=10).json()
    assert fetched["secret"] != secret
    assert fetched["secret"].startswith("whsec_… (sha256 ")
    listed = stack.http.get(f"{stack.api}/api/v1/rules", timeout=10).json()["items"]
    assert [r["id"] for r in listed] == [created["id"]]
    generated = stack.create_rule(name="g", event_types=["*"], url="https://example.com/g")
    assert generated["secret"].startswith("whsec_")
    assert generated["id"] == created["id"] + 1
    assert (
        stack.http.delete(f"{stack.api}/api/v1/rules/{created['id']}", timeout=30).status_code
        == 204
    )
    gone = stack.http.get(f"{stack.api}/api/v1/rules/{created['id']}", timeout=10)
    assert gone.status_code == 404


BAD_REQUESTS = [
    ("POST", "/api/v1/events", [], 422, "non-empty"),
    ("POST", "/api/v1/events", {"order_id": "x"}, 422, "event_id: Field required"),
    (
        "POST",
        "/api/v1/rules",
        {"name": "x", "event_types": ["*"], "url": "https://e.com", "secret": "nope"},
        422,
        "whsec_",
    ),
    (
        "POST",
        "/api/v1/rules",
        {"name": "x", "event_types": [], "url": "https://e.com"},
        422,
        "event_types",
    ),
    ("POST", "/api/v1/rules", {"name": "x", "event_types": ["*"], "url": "not a url"}, 422, "url"),
    ("GET", "/api/v1/rules/424242", None, 404, "no rule with id 424242"),
    (
        "PUT",
        "/api/v1/rules/424242",
        {"name": "x", "event_types": ["*"], "url": "https://e.com"},
        404,
        "no rule",
    ),
    ("GET", "/api/v1/dispatches?status=maybe", None, 422, "status"),
    ("GET", "/api/v1/dispatches?cursor=zzz", None, 400, "cursor"),
    ("GET", "/api/v1/dispatches?limit=0", None, 422, "limit"),
    ("GET", "/api/v1/dispatches?from=yesterday", None, 422, "from"),
    ("GET", "/api/v1/dispatches/msg_nothing", None, 404, "no attempts"),
    ("GET", "/api/v1/dispatches/breakdown?from=2020-01-01T00:00:00Z", None, 400, "30 days"),
    ("GET", "/api/v1/dispatches/export.csv?status=nope", None, 422, "status"),
    ("GET", "/api/v1/dispatches?rule_id=-1", None, 422, "rule_id"),
    ("GET", "/api/v1/dispatches/summary?reason=" + "x" * 257, None, 422, "reason"),
    (
        "GET",
        "/api/v1/dispatches/breakdown?by=regressions&dimension=order_id",
        None,
        422,
        "dimension",
    ),
    ("GET", "/api/v1/dispatches/breakdown?by=carriers", None, 422, "by"),
    ("POST", "/api/v1/resend", {"order_id": "NOPE", "rule_id": 999999}, 404, "no dispatch found"),
    ("POST", "/api/v1/resend", {}, 422, "give either 'dispatch_id', or 'order_id'"),
]


def test_bad_requests_get_a_4xx_with_a_message(stack: Stack) -> None:
    wrong = []
    for method, path, body, status, needle in BAD_REQUESTS:
        response = stack.http.request(method, f"{stack.api}{path}", json=body, timeout=30)
        error = response.json().get("error", "") if response.content else ""
        if response.status_code != status or needle not in str(error):
            wrong.append(f"{method} {path}: {response.status_code} {response.text}")
    assert wrong == []


def test_page_and_openapi_are_served(stack: Stack) -> None:
    page = stack.http.get(f"{stack.api}/", timeout=10)
    assert page.status_code == 200
    assert "Communication" in page.text
    assert "Failed deliveries" in page.text
    spec = stack.http.get(f"{stack.api}/openapi.json", timeout=10).json()
    for path in (
        "/api/v1/rules",
        "/api/v1/events",
        "/api/v1/dispatches",
        "/api/v1/dispatches/summary",
        "/healthz",
        "/readyz",
        "/metrics",
    ):
        assert path in spec["paths"], path


def test_every_service_answers_health_readiness_and_metrics(stack: Stack) -> None:
    worker = f"http://127.0.0.1:{stack.env['DISPARO_WORKER_PORT']}"
    for base in (stack.api, stack.dispatcher, worker):
        assert httpx.get(f"{base}/healthz", timeout=10).status_code == 200, base
        eventually(
            lambda base=base: httpx.get(f"{base}/readyz", timeout=10).status_code == 200,
            60,
            f"{base}/readyz",
        )
    assert stack.http.get(f"{stack.api}/readyz", timeout=10).json()["clickhouse"] == "ok"

    def worker_metrics() -> str | None:
        text = httpx.get(f"{worker}/metrics", timeout=10).text
        return text if "disparo_consumer_lag{" in text else None

    text = eventually(worker_metrics, 30, "the worker's lag gauge")
    assert 'disparo_deliveries_total{outcome="failure",reason="timeout"} 0.0' in text
    assert (
        "disparo_dispatch_jobs_total" in httpx.get(f"{stack.dispatcher}/metrics", timeout=10).text
    )
    assert "disparo_sink_rows_total" in stack.http.get(f"{stack.api}/metrics", timeout=10).text


def test_time_range_errors_say_what_to_change(stack: Stack) -> None:
    now = now_utc()
    reversed_range = {"from": now.isoformat(), "to": (now - timedelta(days=1)).isoformat()}
    r = stack.http.get(f"{stack.api}/api/v1/dispatches/summary", params=reversed_range, timeout=10)
    assert r.status_code == 400
    assert "must be before" in r.json()["error"]
    too_old = {"from": (now - timedelta(days=45)).isoformat()}
    r = stack.http.get(f"{stack.api}/api/v1/dispatches", params=too_old, timeout=10)
    assert r.status_code == 400
    assert "30 days" in r.json()["error"]
    malformed = stack.http.post(
        f"{stack.api}/api/v1/rules",
        content=b"{oops",
        headers={"content-type": "application/json"},
        timeout=10,
    )
    assert malformed.status_code == 422
    assert "JSON" in malformed.json()["error"]


def test_cli_produce_publishes_every_line_of_a_file(
    stack: Stack, receiver: Receiver, tmp_path: Path
) -> None:
    stack.active_rule(name="cli", event_types=["*"], url=f"{receiver.url}/ok")
    lines = tmp_path / "events.jsonl"
    lines.write_text("\n".join(json.dumps(order_event(f"CLI-{i}")) for i in range(3)) + "\n")
    done = subprocess.run(
        [DISPARO, "produce", "--file", str(lines)],
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "published 3/3" in done.stderr
    got = receiver.wait_for("/ok", 3)
    assert sorted(json.loads(r.body)["data"]["order_id"] for r in got) == [
        "CLI-0",
        "CLI-1",
        "CLI-2",
    ]
    bad = subprocess.run(
        [DISPARO, "produce", "--order-id", "X"],
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert bad.returncode == 2
    assert "--event-type" in bad.stderr


def test_status_shows_processes_lag_and_the_last_minute(stack: Stack, receiver: Receiver) -> None:
    stack.active_rule(name="s", event_types=["*"], url=f"{receiver.url}/fail", max_attempts=1)
    stack.publisher.publish_many([order_event("ST-1"), order_event("ST-2")])
    eventually(lambda: stack.total() == 2, 30, "2 attempts")
    done = subprocess.run(
        [DISPARO, "status"],
        env={**stack.env, "DISPARO_API_KEY": stack.key},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    out = done.stdout
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    assert "worker         running, pid" in out
    assert "analytics      running, pid" in out
    assert "demo-receiver  stopped" in out
    assert "analytics duties\n  owned by disparo-analytics-" in out
    assert done.returncode == 1  # not everything of the local stack runs here
    assert f"{stack.env['DISPARO_WORKER_GROUP']}" in out
    assert "2 attempts, 2 failed (100.0%)" in out
