"""Secrets out of the data path, sealed at rest, rotated with an overlap (design: "Secrets")."""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from disparo.kafka import make_producer
from disparo.secret_box import new_key_text
from tests.integration.conftest import (
    DISPARO,
    Stack,
    eventually,
    every_record,
    order_event,
    running_stack,
)
from tests.integration.receiver import Receiver

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]


@pytest.fixture(scope="module")
def stack(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """One stack for the module (4 s rotation overlap); the rewrap test, which changes its
    key, runs last."""
    home = tmp_path_factory.mktemp("secrets")
    with running_stack(kafka_bootstrap, home, DISPARO_SECRET_OVERLAP="4s") as started:
        yield started


def wait_requests(receiver: Receiver, path: str, n: int) -> list[Any]:
    found: list[Any] = eventually(
        lambda: (got := receiver.on(path)) and len(got) >= n and got, 30, f"{n} requests on {path}"
    )
    return found


def test_no_secret_or_header_value_is_readable_in_any_topic(
    stack: Stack, receiver: Receiver
) -> None:
    rule = stack.active_rule(
        name="sealed",
        event_types=["*"],
        url=f"{receiver.url}/flaky/1",
        headers={"Authorization": "Bearer tok-sealed-77"},
    )
    secret = rule["secret"]
    stack.publisher.publish_many([order_event("SEC-1")])
    [first, retry] = stack.rows_eventually(2, rule_id=rule["id"])
    assert (first["status"], retry["status"]) == ("failure", "success")
    resent = stack.http.post(
        f"{stack.api}/api/v1/resend", json={"dispatch_id": first["dispatch_id"]}
    )
    assert resent.status_code == 202
    stack.rows_eventually(3, rule_id=rule["id"])
    junk = make_producer(stack.settings, client_id="test-junk")
    junk.send(stack.topics.dispatch_jobs, b"not a job").get(30)
    junk.close(10)
    dead = eventually(
        lambda: every_record(stack.settings.kafka_bootstrap, stack.topics.dead_letter), 30
    )
    # Only the junk job: the dispatcher reads the sealed rule records as rules, not as junk.
    sources = [dict(r.headers)["disparo.source.topic"].decode() for r in dead]
    assert sources == [stack.topics.dispatch_jobs]
    assert receiver.on("/flaky/1")[0].headers["authorization"] == "Bearer tok-sealed-77"
    needles = [
        secret.encode(),
        secret.removeprefix("whsec_").encode(),
        base64.b64decode(secret.removeprefix("whsec_")),
        b"tok-sealed-77",
    ]
    topics = [
        stack.topics.dispatch_jobs,
        stack.topics.resend,
        stack.topics.dead_letter,
        stack.topics.rules,
        *(stack.topics.retry(t.name) for t in stack.settings.retry_tiers),
    ]
    seen = 0
    for topic in topics:
        for record in every_record(stack.settings.kafka_bootstrap, topic):
            seen += 1
            raw = (record.value or b"") + b"".join(v for _, v in record.headers or [])
            for needle in needles:
                assert needle not in raw, f"{topic} offset {record.offset} holds a secret"
    assert seen >= 6  # two jobs, a retry, a resend, a dead letter, the rule


def test_during_the_overlap_either_secret_verifies_and_after_it_only_the_new_one(
    stack: Stack, receiver: Receiver
) -> None:
    rule = stack.active_rule(name="rotating", event_types=["*"], url=f"{receiver.url}/ok")
    old = rule["secret"]
    rotated = stack.http.post(f"{stack.api}/api/v1/rules/{rule['id']}/rotate-secret")
    assert rotated.status_code == 200, rotated.text
    new = rotated.json()["secret"]
    until = datetime.fromisoformat(rotated.json()["previous_secret_until"])
    assert new != old
    fingerprint = hashlib.sha256(new.encode()).hexdigest()[:8]
    assert stack.rule(rule["id"])["secret"] == f"whsec_… (sha256 {fingerprint})"
    stack.publisher.publish_many([order_event("ROT-1")])
    [during] = wait_requests(receiver, "/ok", 1)
    assert len(during.headers["webhook-signature"].split()) == 2
    for secret in (old, new):
        Webhook(secret).verify(during.body, during.headers)
    time.sleep(max(0.0, until.timestamp() - time.time()) + 0.5)  # the overlap's real end
    stack.publisher.publish_many([order_event("ROT-2")])
    after = wait_requests(receiver, "/ok", 2)[-1]
    assert len(after.headers["webhook-signature"].split()) == 1
    Webhook(new).verify(after.body, after.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(old).verify(after.body, after.headers)
    audit = stack.http.get(f"{stack.api}/api/v1/audit", params={"action": "rule.rotate_secret"})
    [entry] = audit.json()["items"]
    assert entry["target"] == str(rule["id"])
    assert old not in audit.text
    assert new not in audit.text


def test_a_retry_goes_to_the_rule_as_it_is_now(stack: Stack, receiver: Receiver) -> None:
    rule = stack.active_rule(
        name="moving", event_types=["*"], url=f"{receiver.url}/hang", timeout_s=3
    )
    stack.publisher.publish_many([order_event("MOVE-1")])
    wait_requests(receiver, "/hang", 1)  # the first attempt is in flight for 3 s
    fields = {"name": "moving", "event_types": ["*"], "url": f"{receiver.url}/ok", "timeout_s": 3}
    assert stack.http.put(f"{stack.api}/api/v1/rules/{rule['id']}", json=fields).status_code == 200
    [first, second] = stack.rows_eventually(2, rule_id=rule["id"])
    assert (first["reason"], first["url"]) == ("timeout", f"{receiver.url}/hang")
    assert (second["status"], second["url"]) == ("success", f"{receiver.url}/ok")
    [moved] = receiver.on("/ok")
    assert moved.headers["webhook-id"] == first["dispatch_id"]


def test_a_retry_of_a_deleted_rule_ends_as_rule_deleted_without_a_request(
    stack: Stack, receiver: Receiver
) -> None:
    rule = stack.active_rule(
        name="doomed", event_types=["*"], url=f"{receiver.url}/hang/doomed", timeout_s=3
    )
    stack.publisher.publish_many([order_event("GONE-1")])
    wait_requests(receiver, "/hang/doomed", 1)
    assert stack.http.delete(f"{stack.api}/api/v1/rules/{rule['id']}").status_code == 204
    [first, second] = stack.rows_eventually(2, rule_id=rule["id"])
    assert (first["reason"], first["final"]) == ("timeout", False)
    assert (second["reason"], second["final"], second["attempt"]) == ("rule_deleted", True, 2)
    assert second["http_status"] is None
    assert len(receiver.on("/hang/doomed")) == 1


def test_a_missing_or_wrong_key_stops_a_service_at_start_naming_the_variable(
    stack: Stack, receiver: Receiver
) -> None:
    stack.create_rule(name="sealed", event_types=["*"], url=f"{receiver.url}/ok")
    env = {k: v for k, v in stack.env.items() if k != "DISPARO_SECRET_KEY"}
    for key, message in (
        (None, "DISPARO_SECRET_KEY is not set"),
        (new_key_text(), "sealed with key"),
    ):
        run_env = {**os.environ, **env, **({"DISPARO_SECRET_KEY": key} if key else {})}
        run_env["DISPARO_WORKER_PORT"] = "0"
        done = subprocess.run(
            [DISPARO, "worker"], env=run_env, capture_output=True, text=True, timeout=90
        )
        assert done.returncode != 0
        assert message in done.stderr, done.stderr[-2000:]
        assert "DISPARO_SECRET_KEY" in done.stderr


def test_rewrap_reseals_every_rule_so_the_new_key_alone_reads_them(
    stack: Stack, receiver: Receiver
) -> None:
    rule = stack.active_rule(name="rewrapped", event_types=["*"], url=f"{receiver.url}/ok/rw")
    old_key, new_key = stack.env["DISPARO_SECRET_KEY"], new_key_text()
    env = {**os.environ, **stack.env, "DISPARO_SECRET_KEY": new_key}
    done = subprocess.run(
        [DISPARO, "secrets", "rewrap"],
        env={**env, "DISPARO_SECRET_KEY_PREVIOUS": old_key},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    count = len(stack.http.get(f"{stack.api}/api/v1/rules").json()["items"])
    assert f"resealed {count}/{count} rules" in done.stderr
    # A worker holding only the new key starts (the old records are superseded) and delivers.
    stack.table.stop("worker", grace_s=20)
    stack.table.start("worker", [DISPARO, "worker"], {**stack.env, "DISPARO_SECRET_KEY": new_key})
    stack.table.wait_http("worker", f"{stack.worker}/readyz", 90)
    stack.publisher.publish_many([order_event("RW-1")])
    [got] = wait_requests(receiver, "/ok/rw", 1)
    Webhook(rule["secret"]).verify(got.body, got.headers)
