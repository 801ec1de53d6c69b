"""A rule whose endpoint keeps failing is paused, with the reason on it: its webhooks wait."""

from __future__ import annotations

import pytest
from standardwebhooks.webhooks import Webhook

from tests.integration.conftest import DISPARO, Stack, eventually, order_event
from tests.integration.receiver import Receiver

pytestmark = pytest.mark.integration


def test_rule_failing_continuously_is_paused_with_a_reason_and_holds_what_comes_next(
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

    eventually(lambda: stack.rule(dead["id"])["paused"] is True, 30, "the pause")
    reason = stack.rule(dead["id"])["paused_reason"]
    assert "paused automatically" in reason
    assert stack.rule(dead["id"])["active"] is True
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
    assert entry["details"]["after"] == {"paused": True, "paused_reason": reason}

    stack.publisher.publish(order_event("DEAD-2"))
    receiver.wait_for("/ok", 2)
    [kept] = stack.rows_eventually(1, order_id="DEAD-2", rule_id=dead["id"])
    assert (kept["status"], kept["reason"]) == ("held", "held")
    assert len(receiver.on("/fail")) == 1  # held, not sent

    released = stack.http.post(f"{stack.api}/api/v1/rules/{dead['id']}/release", timeout=30)
    assert released.status_code == 200, released.text
    assert (released.json()["paused"], released.json()["held"]) == (False, 1)
    receiver.wait_for("/fail", 2)  # DEAD-2 went out once the rule was unpaused
    # Unpausing starts the endpoint's window again (DISPARO_DEACTIVATE_AFTER from here).
    assert released.json()["resumed_at"] is not None
