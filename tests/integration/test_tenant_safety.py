"""Tenants cannot hurt each other and viewers see no credential (issue 28), on a real stack."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from kafka import KafkaProducer
from standardwebhooks.webhooks import Webhook

from analytics.control.keys import KeyBook
from deploy.local.stack import _admin_key as local_admin_key
from disparo.kafka import ensure_topics
from disparo.settings import KernelSettings
from tests.integration.conftest import (
    DISPARO,
    Stack,
    bearer,
    dispatch_ids,
    eventually,
    every_record,
    order_event,
    running_stack,
    signed_in_key,
)
from tests.integration.receiver import Receiver

pytestmark = pytest.mark.integration

SECRETS = ("hdr-auth-1", "hdr-authn-2", "hdr-hub-3", "url-pass-4", "qs-token-5")
MARKER = "LEAKMARK7"  # in every invalid value sent: must reach no log line


def test_viewers_the_audit_csv_and_outcomes_see_no_credential(
    stack: Stack, receiver: Receiver
) -> None:
    path = f"/cred?token={SECRETS[4]}&page=2"
    url = f"http://user:{SECRETS[3]}@127.0.0.1:{receiver.port}{path}"
    headers = {"X-Auth": SECRETS[0], "Authentication": SECRETS[1], "X-Hub-Signature": SECRETS[2]}
    created = stack.active_rule(name="cred", event_types=["*"], url=url, headers=headers)
    stack.publisher.publish_many([order_event("CRED-1")])
    [request] = receiver.wait_for(path, 1)
    assert request.headers["x-auth"] == SECRETS[0]  # the receiver gets every real value
    assert request.headers["authorization"].startswith("Basic ")
    [row] = stack.rows_eventually(1, rule_id=created["id"])
    shown_url = f"http://********@127.0.0.1:{receiver.port}/cred?token=********&page=2"
    assert row["url"] == shown_url

    detail = stack.http.get(f"{stack.api}/api/v1/dispatches/{row['dispatch_id']}").json()
    [attempt] = detail["attempts"]
    sent = attempt["request_headers"]
    assert sent["X-Auth"] == sent["Authentication"] == sent["X-Hub-Signature"] == "********"
    assert sent["webhook-signature"] == "********"
    assert sent["webhook-id"] == request.webhook_id

    read = stack.rule(created["id"])
    fingerprint = hashlib.sha256(created["secret"].encode()).hexdigest()[:8]
    assert read["secret"] == f"whsec_… (sha256 {fingerprint})"
    assert read["url"] == shown_url
    seen = {
        "rule": json.dumps(read),
        "rules": stack.http.get(f"{stack.api}/api/v1/rules").text,
        "detail": json.dumps(detail),
        "list": json.dumps(stack.dispatches(rule_id=created["id"])),
        "csv": stack.http.get(f"{stack.api}/api/v1/dispatches/export.csv").text,
        "audit": stack.http.get(f"{stack.api}/api/v1/audit").text,
        "outcomes": "".join(
            (r.value or b"").decode(errors="replace")
            for r in every_record(stack.settings.kafka_bootstrap, stack.topics.outcomes)
        ),
    }
    for where, text in seen.items():
        leaked = [s for s in (*SECRETS, request.headers["webhook-signature"]) if s in text]
        assert not leaked, f"{where} shows {leaked}"
        assert created["secret"][6:] not in text, f"{where} shows the signing secret"
    assert row["dispatch_id"] in seen["outcomes"]
    assert "********" in seen["csv"]

    # The masked URL and header values sent back keep the real ones.
    fields = {k: read[k] for k in ("name", "event_types", "url", "headers")}
    assert stack.http.put(f"{stack.api}/api/v1/rules/{created['id']}", json=fields).is_success
    stack.publisher.publish_many([order_event("CRED-2")])
    second = receiver.wait_for(path, 2)[1]
    assert second.headers["x-auth"] == SECRETS[0]
    assert second.headers["authorization"] == request.headers["authorization"]


def test_no_validation_error_puts_a_value_in_a_log(stack: Stack) -> None:
    api = f"{stack.api}/api/v1"
    rule = {"name": "v", "event_types": ["*"], "url": "https://hooks.example.com/"}
    bad_requests = [
        ("POST", "/rules", {**rule, "headers": {"X-Auth": f"{MARKER}\u00e9"}}),
        ("POST", "/rules", {**rule, "secret": f"whsec_{MARKER}"}),
        ("POST", "/rules", {**rule, "url": f"https://u:{MARKER}@hooks.example.com:99999/"}),
        ("POST", "/rules", {**rule, "timeout_s": MARKER}),
        ("POST", "/accounts", {"id": "ok", "name": "n", "notification_url": f"ftp://{MARKER}"}),
        ("POST", "/events", [{**order_event("V-1"), "event_id": MARKER}]),
        ("POST", "/resend", {"dispatch_id": MARKER, "bogus": MARKER}),
        ("PUT", "/rules/1", {**rule, "headers": {"X-K": f"{MARKER}\n"}}),
        ("POST", "/keys", {"name": MARKER * 40, "role": "viewer"}),
    ]
    for method, route, body in bad_requests:
        answer = stack.http.request(method, api + route, json=body)
        assert answer.status_code == 422, (route, answer.text)
    producer = KafkaProducer(bootstrap_servers=stack.settings.kafka_bootstrap)
    try:
        poison = json.dumps({"event_id": MARKER, "payload": {"token": MARKER}}).encode()
        for topic in (stack.topics.order_events, stack.topics.dispatch_jobs):
            producer.send(topic, key=b"V-1", value=poison)
        producer.send(stack.topics.rules, key=b"77", value=poison)
        producer.flush(10)
    finally:
        producer.close(10)
    # The poison records reached every service (each dead-letters or skips them) ...
    stack.publisher.publish_many([order_event("V-2")])
    dead = every_record(stack.settings.kafka_bootstrap, stack.topics.dead_letter)
    assert len(dead) >= 2
    # ... and no log line carries the values they were refused for.
    for name in stack.names:
        log = stack.table.log_file(name).read_text(errors="replace")
        assert MARKER not in log, f"{name} logged a refused value"


def test_accounts_reach_only_their_own_private_targets(
    kafka_bootstrap: str, tmp_path: Path, receiver: Receiver
) -> None:
    own = f"127.0.0.1:{receiver.port}"
    with running_stack(kafka_bootstrap, tmp_path, DISPARO_TARGET_ALLOWLIST="") as stack:
        accounts = f"{stack.api}/api/v1/accounts"
        bad = stack.http.post(
            accounts, json={"id": "x", "name": "x", "target_allowlist": ["10.0.0.1"]}
        )
        assert bad.status_code == 422
        assert "10.1.2.3:8443" in bad.json()["fields"]["target_allowlist"]
        for account in ("acme", "globex"):
            assert stack.http.post(accounts, json={"id": account, "name": account}).is_success
        acme_admin = signed_in_key(stack, "acme-admin", "admin", "acme")
        mine = {"name": "acme", "target_allowlist": [own]}
        refused = httpx.put(f"{accounts}/acme", json=mine, headers=bearer(acme_admin))
        assert refused.status_code == 403
        assert stack.http.put(f"{accounts}/acme", json=mine).json()["target_allowlist"] == [own]

        rules = f"{stack.api}/api/v1/rules"
        acme = stack.active_rule(
            name="a", event_types=["*"], url=f"http://{own}/acme", account_id="acme"
        )
        other_port = {"name": "p", "event_types": ["*"], "account_id": "acme"}
        other_port["url"] = f"http://127.0.0.1:{receiver.port + 1}/x"
        assert stack.http.post(rules, json=other_port).status_code == 422
        literal = {"name": "g", "event_types": ["*"], "url": f"http://{own}/globex"}
        refused = stack.http.post(rules, json={**literal, "account_id": "globex"})
        assert refused.status_code == 422
        assert own in refused.json()["fields"]["url"]  # the hint names the entry to add
        named = f"http://localhost:{receiver.port}/globex"
        globex = stack.active_rule(
            name="g", event_types=["*"], url=named, account_id="globex", max_attempts=1
        )
        stack.publisher.publish_many(
            [order_event("REACH-1", account_id="acme"), order_event("REACH-2", account_id="globex")]
        )
        receiver.wait_for("/acme", 1)
        [row] = stack.rows_eventually(1, rule_id=globex["id"])
        assert (row["reason"], row["status"]) == ("target_refused", "failure")
        assert receiver.on("/globex") == []
        assert [r["reason"] for r in stack.rows_eventually(1, rule_id=acme["id"])] == ["ok"]


def test_rule_writes_compare_and_set_and_resends_are_idempotent(
    stack: Stack, receiver: Receiver
) -> None:
    rule = stack.active_rule(name="cas", event_types=["*"], url=f"{receiver.url}/cas")
    rules = f"{stack.api}/api/v1/rules/{rule['id']}"
    read = stack.rule(rule["id"])
    form = {k: read[k] for k in ("name", "event_types", "url", "headers", "version")}
    rotated = stack.http.post(f"{rules}/rotate-secret", json={"version": read["version"]})
    assert rotated.status_code == 200, rotated.text
    stale = stack.http.put(rules, json={**form, "name": "edited from an old read"})
    assert stale.status_code == 409
    assert stale.json()["current_version"] == read["version"] + 1
    assert f"version {read['version'] + 1}" in stale.json()["error"]
    fingerprint = hashlib.sha256(rotated.json()["secret"].encode()).hexdigest()[:8]
    assert stack.rule(rule["id"])["secret"].endswith(f"{fingerprint})")  # the rotation holds
    stale_release = stack.http.post(f"{rules}/release", params={"version": 1})
    assert stale_release.status_code == 409
    fresh = {**form, "version": read["version"] + 1, "name": "edited"}
    assert stack.http.put(rules, json=fresh).json()["name"] == "edited"

    stack.publisher.publish_many([order_event("IDEM-1")])
    [row] = stack.rows_eventually(1, rule_id=rule["id"])
    once = {"Idempotency-Key": "retry-7f3a"}
    body = {"dispatch_id": row["dispatch_id"]}
    first = stack.http.post(f"{stack.api}/api/v1/resend", json=body, headers=once)
    again = stack.http.post(f"{stack.api}/api/v1/resend", json=body, headers=once)
    assert first.status_code == again.status_code == 202
    assert again.json() == {**first.json(), "replayed": True}
    other = stack.http.post(f"{stack.api}/api/v1/resend", json={"order_id": "IDEM-1"}, headers=once)
    assert other.status_code == 409  # one key, one request
    rows = stack.rows_eventually(2, rule_id=rule["id"])
    unkeyed = stack.http.post(f"{stack.api}/api/v1/resend", json=body)
    assert unkeyed.status_code == 202
    # The unkeyed resend's job follows any the replay queued (one dispatch, one partition).
    assert len(stack.rows_eventually(3, rule_id=rule["id"])) == 3
    assert len(receiver.wait_for("/cas", 3)) == 3
    assert [r["manual"] for r in rows] == [False, True]

    # Key names are unique within an account, not across accounts.
    keys = f"{stack.api}/api/v1/keys"
    for account in ("acme", "globex"):
        made = stack.http.post(keys, json={"name": "ops", "role": "viewer", "account_id": account})
        assert made.status_code == 201, made.text
    taken = stack.http.post(keys, json={"name": "ops", "role": "viewer", "account_id": "acme"})
    assert taken.status_code == 409


def test_make_up_never_reactivates_a_revoked_admin_key(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    settings = KernelSettings(
        kafka_bootstrap=kafka_bootstrap, topic_prefix=f"k{uuid.uuid4().hex[:8]}.", home=tmp_path
    )
    ensure_topics(settings)
    first = local_admin_key(settings)
    assert local_admin_key(settings) == first  # kept across runs while it is active
    book = KeyBook(settings)
    try:
        revoked = book.view.holder(first)
        assert revoked is not None
        book.revoke(revoked.id)
    finally:
        book.close()
    second = local_admin_key(settings)
    assert second != first
    assert (tmp_path / "admin.key").read_text().strip() == second
    book = KeyBook(settings)
    try:
        old, new = book.view.holder(first), book.view.holder(second)
        assert old is not None
        assert not old.active
        assert new is not None
        assert new.active
        assert new.role == "admin"
    finally:
        book.close()


def test_an_account_whose_path_hangs_does_not_slow_another_on_the_same_host(
    stack: Stack, receiver: Receiver
) -> None:
    hang = stack.active_rule(
        name="hangs", event_types=["*"], url=f"{receiver.url}/hang", account_id="acme",
        timeout_s=2, max_attempts=1,
    )  # fmt: skip
    fine = stack.active_rule(
        name="fine", event_types=["*"], url=f"{receiver.url}/ok", account_id="globex"
    )
    hanging = [order_event(f"HANG-{i}", account_id="acme") for i in range(300)]
    stack.publisher.publish_many(hanging)
    receiver.wait_for("/hang", 10)  # acme's endpoint holds its slots now
    flowing = [order_event(f"FLOW-{i}", account_id="globex") for i in range(100)]
    stack.publisher.publish_many(flowing)
    arrived = receiver.wait_for("/ok", 100, timeout_s=30)
    still_hanging = [r for r in receiver.on("/hang") if time.monotonic() - r.at < 20]
    assert still_hanging, "the hanging path was closed before the other account finished"
    assert len({r.webhook_id for r in arrived}) == 100
    rows = stack.rows_eventually(100, rule_id=fine["id"])
    assert {(r["status"], r["attempt"]) for r in rows} == {("success", 1)}
    # acme's timeouts opened acme's circuit only: none of globex's jobs was deferred.
    acme_rows = stack.rows_eventually(5, rule_id=hang["id"])
    assert {r["reason"] for r in acme_rows} == {"timeout"}
    log = stack.log_tail("worker", 10_000_000)
    deferred = [d for d in dispatch_ids(flowing, fine["id"]) if f"deferred {d}" in log]
    assert deferred == []


def written_outside_the_api(stack: Stack, record: dict[str, Any]) -> dict[str, Any]:
    """Write a rules-topic record as any client with write access could; the rule as the API
    shows it once that version is read."""
    producer = KafkaProducer(bootstrap_servers=stack.settings.kafka_bootstrap)
    try:
        value = json.dumps(record).encode()
        producer.send(stack.topics.rules, key=str(record["id"]).encode(), value=value)
        producer.flush(10)
    finally:
        producer.close(10)

    def read() -> dict[str, Any] | None:
        shown = stack.rule(record["id"])
        return shown if shown["version"] == record["version"] else None

    found: dict[str, Any] = eventually(read, 30, f"version {record['version']} to be read")
    return found


def test_a_rule_pointed_elsewhere_through_kafka_delivers_nothing_until_the_api_reseals_it(
    stack: Stack, receiver: Receiver
) -> None:
    rule = stack.active_rule(name="bound", event_types=["*"], url=f"{receiver.url}/bound")
    stack.publisher.publish_many([order_event("SEAL-1")])
    [first] = stack.rows_eventually(1, rule_id=rule["id"])
    records = every_record(stack.settings.kafka_bootstrap, stack.topics.rules)
    stored = json.loads([r for r in records if r.key == str(rule["id"]).encode()][-1].value)
    moved = {**stored, "url": f"{receiver.url}/stolen", "version": stored["version"] + 1}
    shown = written_outside_the_api(stack, moved)
    assert shown["active"] is False
    assert shown["deactivated_reason"].startswith("target_changed")
    resent = stack.http.post(
        f"{stack.api}/api/v1/resend", json={"dispatch_id": first["dispatch_id"]}
    )
    assert resent.status_code == 202, resent.text
    rows = stack.rows_eventually(2, rule_id=rule["id"])
    assert (rows[1]["reason"], rows[1]["status"]) == ("target_changed", "failure")
    assert receiver.on("/stolen") == []

    fields = {k: shown[k] for k in ("name", "event_types", "url", "version")}
    refused = stack.http.put(f"{stack.api}/api/v1/rules/{rule['id']}", json=fields)
    assert refused.status_code == 422
    assert "secret" in refused.json()["fields"]
    fields = {**fields, "url": f"{receiver.url}/bound", "secret": rule["secret"], "active": True}
    assert stack.http.put(f"{stack.api}/api/v1/rules/{rule['id']}", json=fields).is_success
    stack.wait_rule_applied(rule["id"], active=True)
    stack.publisher.publish_many([order_event("SEAL-2")])
    [got] = [r for r in receiver.wait_for("/bound", 2) if b"SEAL-2" in r.body]
    Webhook(rule["secret"]).verify(got.body, got.headers)

    # After `disparo secrets rewrap`, a plain-text record is refused like a moved one.
    done = subprocess.run(
        [DISPARO, "secrets", "rewrap"], env={**os.environ, **stack.env},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "plain-text values are refused" in done.stdout
    current = stack.rule(rule["id"])
    plain = {**{k: current[k] for k in ("id", "name", "event_types", "url", "account_id")},
             "secret": rule["secret"], "version": current["version"] + 1}  # fmt: skip
    refused_plain = written_outside_the_api(stack, plain)
    assert refused_plain["deactivated_reason"].startswith("target_changed")
