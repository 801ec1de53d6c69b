"""An order's story: its events, what every rule of its account made of each, its dispatches.

Rules are judged as they are now (the rules view) by the dispatcher's own matcher
(`disparo.matching`), so a "why" never disagrees with what the dispatcher would decide
today; what was decided then is in the attempts, which win where there are some.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from analytics.errors import NotFound
from analytics.history import order_rows
from analytics.history.queries import Period
from analytics.history.store import Store
from analytics.history.views import iso_text
from disparo.matching import why_not
from disparo.schemas import OrderEvent, Rule, dispatch_id_for

OUTCOMES = ("dispatched", "not_matched", "held", "superseded", "regressed", "inactive")
Attempts = list[dict[str, Any]]


def story(
    store: Store,
    rules: Iterable[Rule],
    order_id: str,
    account_id: str | None,
    period: Period,
    now: datetime,
) -> dict[str, Any]:
    """The order's events with every rule's outcome, and its dispatches with their attempts."""
    events = order_rows.order_events(store, order_id, account_id, period)
    attempts = order_rows.order_attempts(store, order_id, account_id, period)
    if not events and not attempts:
        raise NotFound(
            f"no events or dispatches of order {order_id!r} between "
            f"{iso_text(period.start)} and {iso_text(period.end)}; check the number or widen "
            "'from'/'to' (30 days are kept)"
        )
    by_dispatch: dict[str, Attempts] = {}
    for attempt in attempts[: order_rows.MAX_ATTEMPTS]:
        by_dispatch.setdefault(attempt["dispatch_id"], []).append(attempt)
    by_account: dict[str, list[Rule]] = {}
    for rule in sorted(rules, key=lambda r: r.id):
        by_account.setdefault(rule.account_id, []).append(rule)
    return {
        "order_id": order_id,
        "from": iso_text(period.start),
        "to": iso_text(period.end),
        "rules_as_of": iso_text(now),
        "events": [
            _event_story(e, by_account, by_dispatch) for e in events[: order_rows.MAX_EVENTS]
        ],
        "dispatches": [_dispatch(d, tries) for d, tries in by_dispatch.items()],
        "truncated": len(events) > order_rows.MAX_EVENTS or len(attempts) > order_rows.MAX_ATTEMPTS,
    }


def _event_story(
    stored: dict[str, Any], by_account: dict[str, list[Rule]], by_dispatch: dict[str, Attempts]
) -> dict[str, Any]:
    published_at = stored.pop("published_at")
    item = {
        "event_id": stored.get("event_id"),
        "event_type": stored.get("event_type"),
        "order_status": stored.get("order_status"),
        "occurred_at": stored.get("occurred_at"),
        "published_at": published_at,
        "account_id": stored.get("account_id"),
        "payload": stored.get("payload"),
        "rules": [],
    }
    if stored.get("expunged"):
        item["expunged"] = True  # its payload was erased: shown, not judged again
    try:
        event = OrderEvent.model_validate(stored)
    except ValidationError:
        return item  # stored before a change of the schema: shown, not judged
    item["rules"] = [
        verdict(r, event, published_at, by_dispatch.get(_dispatch_id(event, r), []))
        for r in by_account.get(event.account_id, [])
    ]
    return item


def _dispatch_id(event: OrderEvent, rule: Rule) -> str:
    return dispatch_id_for(uuid.UUID(str(event.event_id)), rule.id)


def verdict(rule: Rule, event: OrderEvent, published_at: str, attempts: Attempts) -> dict[str, Any]:
    """One rule's outcome for one event and why: its attempts when it has some, else the
    rule as it is now."""
    outcome, why = _from_attempts(attempts) if attempts else _from_rule(rule, event, published_at)
    return {"rule_id": rule.id, "rule_name": rule.name, "outcome": outcome, "why": why}


def _from_attempts(attempts: Sequence[dict[str, Any]]) -> tuple[str, str | None]:
    sent = [a for a in attempts if a["status"] in ("success", "failure")]
    if sent:
        last = sent[-1]
        return "dispatched", f"{len(sent)} attempt(s), the last a {last['status']}"
    last = attempts[-1]
    outcome = last["status"] if last["status"] in OUTCOMES else "held"
    return outcome, last["error"] or None


def _from_rule(rule: Rule, event: OrderEvent, published_at: str) -> tuple[str, str | None]:
    mismatch = why_not(rule, event)
    if mismatch is not None:
        return "not_matched", mismatch
    if not rule.active:
        return "inactive", rule.deactivated_reason or "the rule is inactive"
    if rule.activated_at is not None and iso_text(rule.activated_at) > published_at:
        return "inactive", f"the rule became active at {iso_text(rule.activated_at)}, after it"
    if rule.paused:
        return "held", "the rule is paused" + (
            f": {rule.paused_reason}" if rule.paused_reason else ""
        )
    return "dispatched", "matches; no attempt stored yet (in flight, or waiting for a retry)"


def _dispatch(dispatch_id: str, attempts: Attempts) -> dict[str, Any]:
    return {
        "dispatch_id": dispatch_id,
        "rule_id": attempts[-1]["rule_id"],
        "event_id": attempts[-1]["event_id"],
        "status": attempts[-1]["status"],
        "attempts": attempts,
    }
