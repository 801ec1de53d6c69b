"""Which rules an order event matches: pure functions, no I/O.

The dispatcher matches events one by one with `matches`; the events table stores each
event's `filter_fields` so the same rule can be evaluated in SQL (a dry run, a backfill).
Both read a filter path the same way, which a property test holds them to.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from typing import Any

from disparo.schemas import OrderEvent, Rule

ALL_EVENT_TYPES = "*"
# The event's own fields a filter may name; anything else is read inside the payload.
EVENT_FIELDS = ("event_id", "event_type", "order_id", "order_status", "account_id")
MISSING = object()  # what `field_value` returns for a path the event does not have


def field_value(event: OrderEvent, path: str) -> Any:
    """The value a filter path names: an event field, or `payload.a.b` inside the payload."""
    head, _, rest = path.partition(".")
    if head != "payload":
        return getattr(event, head) if head in EVENT_FIELDS and not rest else MISSING
    value: Any = event.payload
    for part in rest.split(".") if rest else []:
        if not isinstance(value, dict) or part not in value:
            return MISSING
        value = value[part]
    return value


def as_text(value: Any) -> str | None:
    """A value as a filter compares it; None for what no filter can match (objects, lists)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float | uuid.UUID):
        return str(value)
    return None


def passes_filters(event: OrderEvent, filters: dict[str, list[str]]) -> bool:
    """True when every filtered field holds one of its allowed values (compared as text)."""
    return _filter_mismatch(event, filters) is None


def _filter_mismatch(event: OrderEvent, filters: dict[str, list[str]]) -> tuple[str, Any] | None:
    """The first filtered path whose value is not allowed, with that value; None if none."""
    for path, allowed in filters.items():
        value = field_value(event, path)
        text = None if value is MISSING else as_text(value)
        if text is None or text not in allowed:
            return path, value
    return None


def matches(rule: Rule, event: OrderEvent) -> bool:
    """True when an active rule wants this event."""
    return rule.active and matches_if_active(rule, event)


def matches_if_active(rule: Rule, event: OrderEvent) -> bool:
    """True when the rule would want this event were it active (a dry run's question)."""
    return _mismatch(rule, event) is None


_ACCOUNT, _TYPE = object(), object()  # a rule's account and event types, not a filter


def _mismatch(rule: Rule, event: OrderEvent) -> tuple[object, Any] | None:
    """What keeps the rule from the event (its account, its types, or a filter path) and
    the event's value there."""
    if rule.account_id != event.account_id:
        return _ACCOUNT, event.account_id
    types = rule.event_types
    if ALL_EVENT_TYPES not in types and event.event_type not in types:
        return _TYPE, event.event_type
    return _filter_mismatch(event, rule.filters)


def why_not(rule: Rule, event: OrderEvent) -> str | None:
    """Why the rule, were it active, does not want this event (`matches_if_active`'s own
    reading, in words); None when it does."""
    found = _mismatch(rule, event)
    if found is None:
        return None
    what, value = found
    if what is _ACCOUNT:
        return f"account_id is {_shown(value)}, rule is of account {_shown(rule.account_id)}"
    if what is _TYPE:
        return f"event_type is {_shown(value)}, rule takes {_shown(rule.event_types)}"
    path = str(what)
    return f"{path} is {_shown(value)}, rule wants {_shown(rule.filters[path])}"


def _shown(value: Any) -> str:
    if value is MISSING:
        return "missing"
    return json.dumps(value, ensure_ascii=False, default=str)


def matching_rules(rules: Iterable[Rule], event: OrderEvent) -> list[Rule]:
    """The rules that want this event, in rule-id order."""
    return sorted((r for r in rules if matches(r, event)), key=lambda r: r.id)


def filter_fields(event: OrderEvent) -> dict[str, str]:
    """Every filter path with a value a filter can match, and that value as text."""
    fields: dict[str, str] = {}
    for name in EVENT_FIELDS:
        text = as_text(getattr(event, name))
        if text is not None:
            fields[name] = text
    _flatten(event.payload, "payload", fields)
    return fields


def _flatten(obj: dict[str, Any], prefix: str, into: dict[str, str]) -> None:
    for key, value in obj.items():
        if "." in key:
            continue  # a filter path splits on dots: this key cannot be named by one
        path = f"{prefix}.{key}"
        if isinstance(value, dict):
            _flatten(value, path, into)
            continue
        text = as_text(value)
        if text is not None:
            into[path] = text
