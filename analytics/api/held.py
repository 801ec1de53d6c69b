"""Held dispatches of a paused rule: `/api/v1/rules/{id}/held`, `/release`, `/discard-held`."""

from __future__ import annotations

from typing import Any

from analytics.api.deps import Admin, Reader, Svc, VersionQ
from analytics.api.routing import api_router
from analytics.control import rule_changes
from analytics.control.rule_forms import view

router = api_router(tags=["rules"])


@router.get("/api/v1/rules/{rule_id}/held")
def held_of_rule(rule_id: int, key: Reader, svc: Svc) -> dict[str, Any]:
    """How many of a rule's dispatches are held, and why the rule is paused."""
    rule = svc.rule_book.found(rule_id, key)
    return {
        "rule_id": rule_id,
        "paused": rule.paused,
        "paused_reason": rule.paused_reason,
        "release_rate": rule.release_rate,
        "held": rule_changes.held_count(svc, rule_id),
    }


@router.post("/api/v1/rules/{rule_id}/release")
def release_held(rule_id: int, actor: Admin, svc: Svc, version: VersionQ = None) -> dict[str, Any]:
    """Unpause a rule: its held dispatches go out oldest first at its `release_rate`."""
    rule, count = rule_changes.release(svc, rule_id, actor, version)
    return {**view(rule), "held": count}


@router.post("/api/v1/rules/{rule_id}/discard-held")
def discard_held(rule_id: int, actor: Admin, svc: Svc) -> dict[str, Any]:
    """End every held dispatch of a rule unsent (a `discarded` failure row each)."""
    return {"rule_id": rule_id, "discarded": rule_changes.discard_held(svc, rule_id, actor)}
