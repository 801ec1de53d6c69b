"""A rule whose endpoint keeps failing is deactivated, with the reason on the rule."""

from __future__ import annotations

import pytest
from standardwebhooks.webhooks import Webhook

from tests.integration.conftest import DISPARO, Stack, eventually, order_event
from tests.integration.receiver import Receiver

pytestmark = pytest.mark.integration


def test_rule_failing_continuously_is_deactivated_with_a_reason_and_gets_no_more_jobs(
    stack: Stack, receiver: Receiver
) -> None:
    stack.table.stop("analytics", grace_s=20)
    env = {**stack.env, "DISPARO_DEACTIVATE_AFTER": "2s", "DISPARO_WARDEN_INTERVAL_S": "0.5"}
    stack.table.start("analytics", [DISPARO, "analytics"], env)
    stack.table.wait_http("analytics", f"{stack.api}/readyz", 60)
    owner = Receiver()  # the default account's owner hears of the pause
    described = stack.http.post(
        f"{stack.api}/api/v1/accounts",
        json={"id": "default", "name": "Default", "notification_url": f"{owner.url}/notify"},
    )
    assert described.status_code == 201, described.text
    dead = stack.active_rule(
        name="dead", event_types=["*"], url=f"{receiver.url}/fail", max_attempts=1
    )
    witness = stack.create_rule(name="witness", event_types=["*"], url=f"{receiver.url}/ok")
    stack.wait_rule_applied(witness["id"], active=True)
    stack.publisher.publish(order_event("DEAD-1"))
    receiver.wait_for("/fail", 1)

    eventually(lambda: stack.rule(dead["id"])["active"] is False, 30, "the deactivation")
    reason = stack.rule(dead["id"])["deactivated_reason"]
    assert "deactivated automatically" in reason
    assert "1 attempts" in reason
    assert stack.rule(witness["id"])["active"] is True
    [paused] = owner.wait_for("/notify", 1)
    told = Webhook(described.json()["notification_secret"]).verify(paused.body, paused.headers)
    assert (told["type"], told["data"]["payload"]["rule_id"]) == ("rule.paused", dead["id"])
    assert told["data"]["payload"]["reason"] == reason
    owner.close()
    audit = stack.http.get(f"{stack.api}/api/v1/audit", params={"actor": "disparo"}).json()
    [entry] = audit["items"]
    assert (entry["action"], entry["target"]) == ("rule.update", str(dead["id"]))
    assert entry["details"]["after"] == {"active": False, "deactivated_reason": reason}

    stack.wait_rule_applied(dead["id"], active=False)
    stack.publisher.publish(order_event("DEAD-2"))
    receiver.wait_for("/ok", 2)
    assert len(receiver.on("/fail")) == 1

    fields = {k: dead[k] for k in ("name", "event_types", "url", "timeout_s", "max_attempts")}
    reactivated = stack.http.put(
        f"{stack.api}/api/v1/rules/{dead['id']}", json={**fields, "active": True}, timeout=30
    ).json()
    assert reactivated["active"] is True
    assert reactivated["deactivated_reason"] is None
    # Reactivation gives the endpoint a full window again: not deactivated at once.
    stack.wait_rule_applied(dead["id"], active=True)
    assert stack.rule(dead["id"])["active"] is True
