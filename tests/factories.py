"""Builders of valid messages for tests."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from disparo.schemas import (
    AttemptOutcome,
    DeliveryTarget,
    DispatchJob,
    OrderEvent,
    Rule,
    generate_secret,
    now_utc,
)


def event(**changes: Any) -> OrderEvent:
    fields: dict[str, Any] = {
        "event_id": uuid.uuid4(),
        "event_type": "order.dispatched",
        "order_id": "ORD-1",
        "order_status": "dispatched",
        "occurred_at": now_utc(),
        "payload": {"carrier": "acme", "weight": {"kg": 2}},
    }
    fields.update(changes)
    return OrderEvent(**fields)


def rule(**changes: Any) -> Rule:
    fields: dict[str, Any] = {
        "id": 61856,
        "name": "orders to acme",
        "event_types": ["order.dispatched"],
        "url": "https://hooks.example.com/in",
        "secret": generate_secret(),
    }
    fields.update(changes)
    return Rule(**fields)


def job(url: str = "https://hooks.example.com/in", **target: Any) -> DispatchJob:
    matched = rule(url=url)
    base = DispatchJob.first(event(), matched).with_target(DeliveryTarget.of(matched))
    if target:
        merged = base.target.model_dump() | target
        return base.with_target(DeliveryTarget(**merged))
    return base


def outcome(order_id: str, at: datetime, status: str = "success", **changes: Any) -> AttemptOutcome:
    """One attempt's outcome as a worker reports it; `changes` override any field."""
    fields: dict[str, Any] = {
        "attempt_id": str(uuid.uuid4()),
        "dispatch_id": f"msg_{uuid.uuid4().hex}",
        "attempt": 1,
        "manual": False,
        "order_id": order_id,
        "order_status": "dispatched",
        "event_id": str(uuid.uuid4()),
        "event_type": "order.dispatched",
        "rule_id": 61856,
        "url": "https://hooks.example.com/in",
        "dispatched_at": at,
        "status": status,
        "reason": "ok" if status == "success" else "http_5xx",
        "http_status": 200 if status == "success" else 503,
        "duration_ms": 12,
        "final": True,
    }
    fields.update(changes)
    return AttemptOutcome.model_validate(fields)


def attempt(order_id: str, at: datetime, status: str = "success", **changes: Any) -> Any:
    """The worker's plain record of one attempt, with the fields `outcome` gives."""
    from consumers.attempt import Attempt

    return Attempt(**dict(outcome(order_id, at, status, **changes)))


def bare_services() -> Any:
    """The analytics services with nothing behind them: for apps that serve no data."""
    from types import SimpleNamespace

    from analytics.control.services import Services

    return Services(
        store=None,  # type: ignore[arg-type]
        rule_book=None,  # type: ignore[arg-type]
        account_book=None,  # type: ignore[arg-type]
        key_ring=SimpleNamespace(view=None),  # type: ignore[arg-type]
        jobs=None,  # type: ignore[arg-type]
        intake=None,  # type: ignore[arg-type]
        topics=None,  # type: ignore[arg-type]
    )
