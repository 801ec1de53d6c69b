"""Operational webhooks to an account's owner: a rule paused, failing or recovered; the
account's receipt SLA breached or recovered.

They travel as dispatch jobs for rule id 0, which workers resolve to the account's
notification URL and secret: the same delivery, signing, retries and history as any webhook.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from disparo.accounts import Account
from disparo.schemas import (
    NOTIFICATIONS_RULE_ID,
    DeliveryTarget,
    DispatchJob,
    OrderEvent,
    Rule,
    RuleRef,
    dispatch_id_for,
)

Kind = Literal["rule.paused", "rule.failing", "rule.recovered"]
AccountKind = Literal["sla.breached", "sla.recovered"]
_NAMESPACE = uuid.UUID("0f6f1c2a-8f6e-4bd5-9b8e-2c5a4d7e9a31")
TIMEOUT_S = 10.0
MAX_ATTEMPTS = 8


def notification_job(
    kind: Kind, rule: Rule, episode: str, at: datetime, details: dict[str, Any]
) -> DispatchJob:
    """The job of one notification about `rule`; `episode` makes its id (and webhook-id)
    the same each time the same change is announced again, so receivers drop repeats."""
    event = OrderEvent(
        event_id=uuid.uuid5(_NAMESPACE, f"{rule.account_id}/{rule.id}/{kind}/{episode}"),
        event_type=kind,
        order_id=f"rule-{rule.id}",
        order_status=kind.removeprefix("rule."),
        occurred_at=at,
        payload={"rule_id": rule.id, "rule_name": rule.name, **details},
        account_id=rule.account_id,
    )
    return _notice(event)


def account_notification_job(
    kind: AccountKind, account_id: str, episode: str, at: datetime, details: dict[str, Any]
) -> DispatchJob:
    """The job of one notification about the account itself (its receipt SLA); the same
    id each time the same change is announced again."""
    event = OrderEvent(
        event_id=uuid.uuid5(_NAMESPACE, f"{account_id}/account/{kind}/{episode}"),
        event_type=kind,
        order_id=f"account-{account_id}",
        order_status=kind.removeprefix("sla."),
        occurred_at=at,
        payload={"account_id": account_id, **details},
        account_id=account_id,
    )
    return _notice(event)


def _notice(event: OrderEvent) -> DispatchJob:
    """The job of a notification event: rule 0, which workers resolve to the account."""
    return DispatchJob(
        dispatch_id=dispatch_id_for(event.event_id, NOTIFICATIONS_RULE_ID),
        event=event,
        rule=RuleRef(rule_id=NOTIFICATIONS_RULE_ID),
    )


def notification_target(account: Account | None) -> DeliveryTarget:
    """Where an account's notifications go; `gone` when it has no notification URL."""
    if account is None or account.notification_url is None or not account.notification_secret:
        return DeliveryTarget.gone(NOTIFICATIONS_RULE_ID)
    return DeliveryTarget(
        rule_id=NOTIFICATIONS_RULE_ID,
        url=str(account.notification_url),
        secret=account.notification_secret,
        timeout_s=TIMEOUT_S,
        max_attempts=MAX_ATTEMPTS,
    )
