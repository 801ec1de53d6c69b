"""Which rules an order event matches: pure functions, no I/O.

The dispatcher matches events one by one with `matches`; the events table stores each
event's `filter_fields` so the same rule can be evaluated in SQL (a dry run, a backfill).
Both read a filter path the same way, which a property test holds them to.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from disparo import filters
from disparo.filters import FilterSpec
from disparo.schemas import OrderEvent, Rule

ALL_EVENT_TYPES = "*"
# The event's own fields a filter may name; anything else is read inside the payload.
EVENT_FIELDS = ("event_id", "event_type", "order_id", "order_status", "account_id")
MISSING = object()  # what `field_value` returns for a path the event does not have


def field_value(event: OrderEvent, path: str) -> Any:
    """The value a filter path names: an event field, or `payload.a.b` inside the payload."""
    head, dot, rest = path.partition(".")
    if head != "payload":
        return getattr(event, head) if head in EVENT_FIELDS and not dot else MISSING
    value: Any = event.payload
    for part in rest.split(".") if dot else []:  # "payload." names the key "" (as SQL does)
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


@dataclass(frozen=True)
class FilterMiss:
    """A filter an event does not pass: the path, the event's value there and the filter."""

    path: str
    value: Any
    spec: FilterSpec

    def __str__(self) -> str:
        return f"{self.path} is {_shown(self.value)}, rule wants {_shown(self.spec)}"


def passes_filters(event: OrderEvent, specs: dict[str, FilterSpec]) -> bool:
    """True when the event passes every filter (values compared as text)."""
    return filter_mismatch(event, specs) is None


def filter_mismatch(event: OrderEvent, specs: dict[str, FilterSpec]) -> FilterMiss | None:
    """The first filter the event does not pass; None when it passes them all."""
    for path, spec in specs.items():
        value = field_value(event, path)
        if not filters.passes(spec, None if value is MISSING else as_text(value)):
            return FilterMiss(path, value, spec)
    return None


def matches(rule: Rule, event: OrderEvent) -> bool:
    """True when an active rule wants this event."""
    return rule.active and matches_if_active(rule, event)


def matches_if_active(rule: Rule, event: OrderEvent) -> bool:
    """True when the rule would want this event were it active (a dry run's question)."""
    return _mismatch(rule, event) is None


_ACCOUNT, _TYPE = object(), object()  # a rule's account and event types, not a filter


def _mismatch(rule: Rule, event: OrderEvent) -> tuple[object, Any] | FilterMiss | None:
    """What keeps the rule from the event: its account or its types (with the event's
    value), or a filter it does not pass."""
    if rule.account_id != event.account_id:
        return _ACCOUNT, event.account_id
    types = rule.event_types
    if ALL_EVENT_TYPES not in types and event.event_type not in types:
        return _TYPE, event.event_type
    return filter_mismatch(event, rule.filters)


def why_not(rule: Rule, event: OrderEvent) -> str | None:
    """Why the rule, were it active, does not want this event (`matches_if_active`'s own
    reading, in words); None when it does."""
    found = _mismatch(rule, event)
    if found is None or isinstance(found, FilterMiss):
        return None if found is None else str(found)
    what, value = found
    if what is _ACCOUNT:
        return f"account_id is {_shown(value)}, rule is of account {_shown(rule.account_id)}"
    return f"event_type is {_shown(value)}, rule takes {_shown(rule.event_types)}"


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
