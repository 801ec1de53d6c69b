"""Which rules an order event matches: pure functions, no I/O."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from disparo.schemas import OrderEvent, Rule

ALL_EVENT_TYPES = "*"
_MISSING = object()


def field_value(event: OrderEvent, path: str) -> Any:
    """The value a filter path names: an event field, or `payload.a.b` inside the payload."""
    head, _, rest = path.partition(".")
    if head != "payload":
        return getattr(event, head, _MISSING) if not rest else _MISSING
    value: Any = event.payload
    for part in rest.split(".") if rest else []:
        if not isinstance(value, dict) or part not in value:
            return _MISSING
        value = value[part]
    return value


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def passes_filters(event: OrderEvent, filters: dict[str, list[str]]) -> bool:
    """True when every filtered field holds one of its allowed values (compared as text)."""
    for path, allowed in filters.items():
        value = field_value(event, path)
        if value is _MISSING or value is None or _as_text(value) not in allowed:
            return False
    return True


def matches(rule: Rule, event: OrderEvent) -> bool:
    """True when an active rule wants this event."""
    if not rule.active or rule.account_id != event.account_id:
        return False
    types = rule.event_types
    if ALL_EVENT_TYPES not in types and event.event_type not in types:
        return False
    return passes_filters(event, rule.filters)


def matching_rules(rules: Iterable[Rule], event: OrderEvent) -> list[Rule]:
    """The rules that want this event, in rule-id order."""
    return sorted((r for r in rules if matches(r, event)), key=lambda r: r.id)
