"""Builders of valid messages for tests."""

from __future__ import annotations

import uuid
from typing import Any

from disparo.schemas import DeliveryTarget, DispatchJob, OrderEvent, Rule, generate_secret, now_utc


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
    base = DispatchJob.first(event(), rule(url=url))
    if target:
        merged = base.target.model_dump() | target
        return base.model_copy(update={"target": DeliveryTarget(**merged)})
    return base
