"""Portal links through the API: the scope they sign in with, their limits, their end."""

from __future__ import annotations

from urllib.parse import urlsplit

import httpx
import pytest

from tests.integration.conftest import Stack, bearer, order_event, signed_in_key
from tests.integration.receiver import Receiver

pytestmark = pytest.mark.integration
ACCT = "portal"


def _link_key(url: str) -> str:
    fragment = urlsplit(url).fragment
    assert fragment.startswith("key=dsp_")
    return fragment.removeprefix("key=")


def test_a_link_limited_to_one_rule_sees_that_rules_webhooks_only(
    stack: Stack, receiver: Receiver
) -> None:
    stack.http.post(f"{stack.api}/api/v1/accounts", json={"id": ACCT, "name": "P"})
    shown = stack.active_rule(
        name="shown", event_types=["*"], url=f"{receiver.url}/ok", account_id=ACCT
    )
    hidden = stack.active_rule(
        name="hidden", event_types=["*"], url=f"{receiver.url}/reject", account_id=ACCT
    )
    stack.publisher.publish_many([order_event(f"PL-{i}", account_id=ACCT) for i in range(3)])
    stack.rows_eventually(6, account_id=ACCT)

    links = f"{stack.api}/api/v1/accounts/{ACCT}/portal-links"
    too_long = stack.http.post(links, json={"role": "viewer", "ttl_s": 86_401})
    assert too_long.status_code == 422
    admin_role = stack.http.post(links, json={"role": "admin"})
    assert admin_role.status_code == 422
    other_rule = stack.http.post(links, json={"role": "viewer", "rule_ids": [999_999]})
    assert other_rule.status_code == 422
    assert "has no rule 999999" in other_rule.json()["error"]
    # An account's own admin makes links of its account only.
    own_admin = httpx.Client(
        base_url=stack.api, headers=bearer(signed_in_key(stack, "pa", "admin", ACCT)), timeout=30
    )
    assert (
        own_admin.post("/api/v1/accounts/default/portal-links", json={"role": "viewer"}).status_code
        == 404
    )
    made = own_admin.post(
        f"/api/v1/accounts/{ACCT}/portal-links",
        json={"role": "operator", "ttl_s": 600, "rule_ids": [shown["id"]]},
    )
    assert made.status_code == 201, made.text
    link = made.json()
    assert (link["role"], link["account_id"], link["rule_ids"]) == ("operator", ACCT, [shown["id"]])

    scoped = httpx.Client(base_url=stack.api, headers=bearer(_link_key(link["url"])), timeout=30)
    me = scoped.get("/api/v1/me").json()
    assert (me["portal"], me["account_id"], me["rule_ids"]) == (True, ACCT, [shown["id"]])
    items = scoped.get("/api/v1/dispatches", params={"status": "all"}).json()["items"]
    assert {i["rule_id"] for i in items} == {shown["id"]}
    assert len(items) == 3
    assert scoped.get("/api/v1/dispatches/summary").json()["total"] == 3
    assert scoped.get("/api/v1/dispatches/breakdown").json()["failed"] == 0
    every = stack.http.get(f"{stack.api}/api/v1/dispatches/breakdown", params={"account_id": ACCT})
    assert every.json()["failed"] == 3  # the hidden rule's, which the link does not see
    assert [r["id"] for r in scoped.get("/api/v1/rules").json()["items"]] == [shown["id"]]
    assert scoped.get(f"/api/v1/rules/{hidden['id']}").status_code == 404
    assert scoped.get("/api/v1/dispatches", params={"rule_id": hidden["id"]}).status_code == 404
    other_dispatch = stack.http.get(
        f"{stack.api}/api/v1/dispatches", params={"rule_id": hidden["id"]}
    ).json()["items"][0]["dispatch_id"]
    assert scoped.get(f"/api/v1/dispatches/{other_dispatch}").status_code == 404
    story = scoped.get("/api/v1/orders/PL-1").json()
    assert {d["rule_id"] for d in story["dispatches"]} == {shown["id"]}
    assert scoped.post("/api/v1/resend", json={"dispatch_id": other_dispatch}).status_code == 404
    assert scoped.post("/api/v1/resend", json={"order_id": "PL-1"}).json()["queued"] == 1
    refused = scoped.get("/api/v1/audit")
    assert refused.status_code == 403
    assert "this link shows rules" in refused.json()["error"]

    listed = stack.http.get(links).json()["items"]
    assert [(x["id"], x["state"]) for x in listed] == [(link["id"], "active")]
    assert "url" not in listed[0]
    gone = own_admin.delete(f"/api/v1/accounts/{ACCT}/portal-links/{link['id']}")
    assert gone.json()["state"] == "revoked"
    after = scoped.get("/api/v1/me")
    assert after.status_code == 401
    assert "this portal link was revoked" in after.json()["error"]
    audit = stack.http.get(f"{stack.api}/api/v1/audit", params={"action": "portal_link.create"})
    assert [a["target"] for a in audit.json()["items"]] == [link["id"]]
