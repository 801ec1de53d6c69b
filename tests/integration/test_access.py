"""Keys, roles and the audit trail on a real stack (design notes, "Access")."""

from __future__ import annotations

import json
import os
import socket
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from analytics.api.app import ROUTERS, access_table
from deploy.local.broker import free_port
from disparo.access import ROLES, Permission, allows
from tests.integration.conftest import (
    DISPARO,
    Stack,
    bearer,
    eventually,
    order_event,
    running_stack,
    signed_in_key,
)
from tests.integration.receiver import Receiver

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]
SAMPLE_PATH_VALUES = {
    "rule_id": "424242",
    "dispatch_id": "msg_nothing",
    "key_id": "key_0000000000000000",
    "account_id": "acct-matrix",
    "task_id": "00000000-0000-0000-0000-000000000000",
    "order_id": "ORD-matrix",
    "link_id": "key_0000000000000000",
}


def answer_of(method: str, url: str, body: object, headers: dict[str, str]) -> httpx.Response:
    """The route's answer; of a stream (the live history), its status and first bytes."""
    if not url.endswith("/stream"):
        return httpx.request(method, url, json=body, headers=headers, timeout=30)
    with httpx.stream(method, url, headers=headers, timeout=30) as response:
        if response.status_code != 200:
            response.read()
        return response


def api_routes() -> list[tuple[str, str, Permission]]:
    """Every `/api/` route the analytics process serves, with the permission it declares."""
    found = []
    for method, path, permission in access_table(ROUTERS):
        assert permission is not None, f"{method} {path} has no access decision"
        found.append((method, path.format(**SAMPLE_PATH_VALUES), permission))
    return found


@pytest.fixture(scope="module")
def stack(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """One stack for the module (each test uses its own key names, rules and orders)."""
    with running_stack(kafka_bootstrap, tmp_path_factory.mktemp("access")) as started:
        yield started


def test_every_route_answers_each_role_as_the_design_says(stack: Stack) -> None:
    routes = api_routes()
    # rules x6, dispatches x5, resend x2, keys x3, me, audit, events, accounts x5
    assert len(routes) >= 24
    keys = {role: signed_in_key(stack, f"matrix-{role}", role) for role in ROLES}
    revoked = signed_in_key(stack, "matrix-revoked", "viewer")
    revoked_id = stack.http.get(f"{stack.api}/api/v1/me", headers=bearer(revoked)).json()["id"]
    assert stack.http.delete(f"{stack.api}/api/v1/keys/{revoked_id}").status_code == 200
    wrong: list[str] = []
    for method, path, permission in routes:
        url = f"{stack.api}{path}"
        body = {} if method in ("POST", "PUT") else None
        for who, headers in (("no key", {}), ("revoked", bearer(revoked))):
            answer = answer_of(method, url, body, headers)
            if answer.status_code != 401 or not answer.json()["error"]:
                wrong.append(f"{method} {path} with {who}: {answer.status_code}")
        for role, key in keys.items():
            answer = answer_of(method, url, body, bearer(key))
            if allows(role, permission):
                ok = answer.status_code not in (401, 403, 500)
            else:
                needed = answer.json().get("error", "") if answer.content else ""
                ok = answer.status_code == 403 and "role" in needed and role in needed
            if not ok:
                wrong.append(f"{method} {path} as {role}: {answer.status_code} {answer.text[:120]}")
    assert wrong == []


def test_401_and_403_say_what_to_do(stack: Stack) -> None:
    url = f"{stack.api}/api/v1/rules"
    none = httpx.get(url)
    assert none.status_code == 401
    assert none.headers["www-authenticate"] == "Bearer"
    assert "Authorization: Bearer" in none.json()["error"]
    assert "disparo keys create" in none.json()["error"]
    basic = httpx.get(url, headers={"Authorization": "Basic dXNlcjpwYXNz"})
    assert "must be `Bearer <API key>`" in basic.json()["error"]
    unknown = httpx.get(url, headers=bearer("dsp_" + "x" * 43))
    assert "unknown API key" in unknown.json()["error"]
    viewer = signed_in_key(stack, "someone", "viewer")
    refused = httpx.post(url, json={}, headers=bearer(viewer))
    assert refused.status_code == 403
    assert refused.json()["error"] == "this needs the admin role; key 'someone' has the viewer role"
    open_paths = [httpx.get(f"{stack.api}{p}").status_code for p in ("/healthz", "/metrics", "/")]
    assert open_paths == [200, 200, 200]


def test_a_request_without_a_key_is_refused_before_its_body_is_sent(stack: Stack) -> None:
    host, port = stack.api.removeprefix("http://").split(":")
    head = (
        "POST /api/v1/events HTTP/1.1\r\n"
        f"Host: {host}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {10 * 1024 * 1024}\r\n\r\n"
    )
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(head.encode())  # the headers only: not one byte of the 10 MiB body
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            chunk = conn.recv(65536)
            if not chunk:
                break
            answer += chunk
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line == b"HTTP/1.1 401 Unauthorized", answer[:500]
    assert b"no API key" in rest


@pytest.fixture(scope="module")
def second(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Another analytics process on the same topics (its own chdb and sink group)."""
    home = tmp_path_factory.mktemp("second-replica")
    port = free_port()
    env = {
        **stack.env,
        "DISPARO_HOME": str(home),
        "DISPARO_API_PORT": str(port),
        "DISPARO_SINK_GROUP": f"{stack.settings.topic_prefix}sink-2",
        "DISPARO_EVENT_SINK_GROUP": f"{stack.settings.topic_prefix}events-2",
        "DISPARO_CLICKHOUSE_URL": "",
    }
    stack.table.start("analytics-2", [DISPARO, "analytics"], env)
    try:
        second = f"http://127.0.0.1:{port}"
        stack.table.wait_http("analytics-2", f"{second}/readyz", 90)
        yield second
    finally:
        stack.table.stop("analytics-2", grace_s=20)


def test_a_revoked_key_is_refused_by_every_api_replica(stack: Stack, second: str) -> None:
    """The second replica learns keys, and their revocation, from the api-keys topic."""
    key = signed_in_key(stack, "short-lived", "operator")
    me = httpx.get(f"{second}/api/v1/me", headers=bearer(key))
    assert me.status_code == 200
    assert me.json()["may"] == ["read", "resend", "signed_in"]
    assert stack.http.delete(f"{stack.api}/api/v1/keys/{me.json()['id']}").status_code == 200

    def refused_everywhere() -> bool:
        answers = [
            httpx.get(f"{api}/api/v1/me", headers=bearer(key)) for api in (stack.api, second)
        ]
        return all(a.status_code == 401 and "revoked" in a.json()["error"] for a in answers)

    eventually(refused_everywhere, 5, "both replicas to refuse the revoked key")


def test_two_replicas_creating_rules_at_once_never_share_an_id(stack: Stack, second: str) -> None:
    """Each replica's chdb is its own (one process per chdb path); ids come from Kafka."""
    before = {r["id"] for r in stack.http.get(f"{stack.api}/api/v1/rules").json()["items"]}
    explicit = max(before | {1000}) + 2  # an id the sequencer reaches soon: stepped over
    stack.create_rule(name="explicit", id=explicit, event_types=["*"], url="http://127.0.0.1:9/x")

    def create(api: str, n: int) -> int:
        body = {"name": f"r{n}", "event_types": ["*"], "url": "http://127.0.0.1:9/x"}
        answer = stack.http.post(f"{api}/api/v1/rules", json=body)
        assert answer.status_code == 201, answer.text
        return int(answer.json()["id"])

    with ThreadPoolExecutor(8) as pool:
        jobs = [pool.submit(create, api, n) for n in range(100) for api in (stack.api, second)]
        ids = [job.result() for job in jobs]
    assert len(set(ids)) == 200
    assert explicit not in ids
    assert max(ids) > explicit  # the sequencer went past it
    listed = {r["id"] for r in stack.http.get(f"{stack.api}/api/v1/rules").json()["items"]}
    assert listed == before | {*ids, explicit}


def test_keys_from_the_cli_sign_in_list_and_revoke(stack: Stack) -> None:
    env = {**os.environ, **stack.env}

    def cli(*args: str) -> str:
        done = subprocess.run(
            [DISPARO, "keys", *args], env=env, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    created = cli("create", "--name", "ci-publisher", "--role", "publisher").splitlines()
    key_id = created[0].split()[1]
    key = created[1]
    assert key.startswith("dsp_")
    assert len(key) >= 4 + 43
    eventually(
        lambda: httpx.get(f"{stack.api}/api/v1/me", headers=bearer(key)).status_code == 200, 10
    )
    sent = httpx.post(
        f"{stack.api}/api/v1/events", json=order_event("CLI-1"), headers=bearer(key), timeout=30
    )
    assert sent.status_code == 202
    assert httpx.get(f"{stack.api}/api/v1/rules", headers=bearer(key)).status_code == 403
    listed = cli("list")
    assert key_id in listed
    assert "ci-publisher" in listed
    assert "publisher" in listed
    assert key not in listed
    assert "revoked" in cli("revoke", key_id)
    eventually(
        lambda: httpx.get(f"{stack.api}/api/v1/me", headers=bearer(key)).status_code == 401, 10
    )
    keys = stack.http.get(f"{stack.api}/api/v1/keys").json()["items"]
    [row] = [k for k in keys if k["id"] == key_id]
    assert row["revoked_at"] is not None
    assert "hash" not in row
    assert "key" not in row


def test_rule_changes_are_audited_with_the_actor_and_no_secret(stack: Stack) -> None:
    editor = signed_in_key(stack, "rule-editor", "admin")
    viewer = signed_in_key(stack, "auditor", "viewer")
    rules = f"{stack.api}/api/v1/rules"
    body = {"name": "audited", "event_types": ["*"], "url": "http://127.0.0.1:9/a"}
    body["headers"] = {"Authorization": "Bearer customer-token-123"}
    created = httpx.post(rules, json=body, headers=bearer(editor), timeout=30).json()
    secret = created["secret"]
    changed = {**body, "url": "http://127.0.0.1:9/b", "headers": created["headers"]}
    changed["secret"] = "whsec_" + "QUJD" * 8
    updated = httpx.put(f"{rules}/{created['id']}", json=changed, headers=bearer(editor))
    assert updated.status_code == 200
    assert httpx.delete(f"{rules}/{created['id']}", headers=bearer(editor)).status_code == 204
    audit = httpx.get(f"{stack.api}/api/v1/audit", headers=bearer(viewer), timeout=30).json()
    mine = sorted((e for e in audit["items"] if e["actor"] == "rule-editor"), key=lambda e: e["at"])
    assert [e["action"] for e in mine] == ["rule.create", "rule.update", "rule.delete"]
    assert {e["target"] for e in mine} == {str(created["id"])}
    update = mine[1]["details"]
    assert update["before"]["url"].endswith("/a")
    assert update["after"]["url"].endswith("/b")
    assert update["secret_replaced"] is True
    assert update["after"]["headers"] == {"Authorization": "********"}
    text = json.dumps(audit)
    for hidden in (secret, changed["secret"], "customer-token-123"):
        assert hidden not in text
    only = httpx.get(
        f"{stack.api}/api/v1/audit",
        params={"action": "rule.delete", "actor": "rule-editor"},
        headers=bearer(viewer),
    ).json()["items"]
    assert [e["action"] for e in only] == ["rule.delete"]
    bad = httpx.get(f"{stack.api}/api/v1/audit", params={"action": "nope"}, headers=bearer(viewer))
    assert bad.status_code == 422
    assert "rule.update" in bad.json()["error"]


def test_header_values_are_masked_on_read_and_kept_when_sent_back(
    stack: Stack, receiver: Receiver
) -> None:
    rule = stack.active_rule(
        name="masked",
        event_types=["order.dispatched"],
        url=f"{receiver.url}/masked",
        headers={"Authorization": "Bearer customer-token-456", "X-Tenant": "acme"},
    )
    read = stack.rule(rule["id"])
    assert read["headers"] == {"Authorization": "********", "X-Tenant": "********"}
    assert "customer-token-456" not in stack.http.get(f"{stack.api}/api/v1/rules").text
    fields = {k: read[k] for k in ("name", "event_types", "url", "headers", "timeout_s")}
    fields["headers"] = {**read["headers"], "X-Tenant": "globex"}
    assert stack.http.put(f"{stack.api}/api/v1/rules/{rule['id']}", json=fields).status_code == 200
    stack.publisher.publish_many([order_event("MASK-1")])
    stack.rows_eventually(1, rule_id=rule["id"])
    [request] = receiver.on("/masked")
    assert request.headers["authorization"] == "Bearer customer-token-456"
    assert request.headers["x-tenant"] == "globex"
