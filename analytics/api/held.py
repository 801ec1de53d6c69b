"""Held dispatches of a paused rule: `/api/v1/rules/{id}/held`, `/release`, `/discard-held`."""

from __future__ import annotations

import functools
from typing import Annotated, Any

from fastapi import APIRouter, Depends

from analytics import audit, held
from analytics.api.deps import Services, services
from analytics.api.rules import Admin, Reader, found_rule, view, write_rule
from analytics.errors import Conflict
from analytics.sending import send_outcome
from disparo.schemas import now_utc

router = APIRouter(tags=["rules"])
DISCARD_BATCH = 10_000


@router.get("/api/v1/rules/{rule_id}/held")
def held_of_rule(
    rule_id: int, key: Reader, svc: Annotated[Services, Depends(services)]
) -> dict[str, Any]:
    """How many of a rule's dispatches are held, and why the rule is paused."""
    rule = found_rule(svc, rule_id, key)
    count = held.held_counts(svc.store, now_utc(), rule_id).get(rule_id, 0)
    return {
        "rule_id": rule_id,
        "paused": rule.paused,
        "paused_reason": rule.paused_reason,
        "release_rate": rule.release_rate,
        "held": count,
    }


@router.post("/api/v1/rules/{rule_id}/release")
def release_held(
    rule_id: int, actor: Admin, svc: Annotated[Services, Depends(services)]
) -> dict[str, Any]:
    """Unpause a rule: its held dispatches go out oldest first at its `release_rate`."""
    current = found_rule(svc, rule_id, actor)
    if not current.paused:
        raise Conflict(f"rule {rule_id} is not paused; nothing is held back")
    rule = current.changed(paused=False, paused_reason=None, resumed_at=now_utc())
    write_rule(svc, rule)
    count = held.held_counts(svc.store, now_utc(), rule_id).get(rule_id, 0)
    details = {"held": count, "release_rate": rule.release_rate, "reason": current.paused_reason}
    audit.record(svc.store, actor, "rule.release_held", str(rule_id), details, rule.account_id)
    return {**view(rule), "held": count}


@router.post("/api/v1/rules/{rule_id}/discard-held")
def discard_held(
    rule_id: int, actor: Admin, svc: Annotated[Services, Depends(services)]
) -> dict[str, Any]:
    """End every held dispatch of a rule unsent (a `discarded` failure row each)."""
    rule = found_rule(svc, rule_id, actor)
    why = f"discarded while held by {actor.name}"
    total = 0
    while rows := held.oldest_held(svc.store, rule_id, now_utc(), DISCARD_BATCH):
        held.discard(svc.store, rows, why, actor.name, functools.partial(send_outcome, svc))
        total += len(rows)
        if len(rows) < DISCARD_BATCH:
            break
    details = {"discarded": total}
    audit.record(svc.store, actor, "rule.discard_held", str(rule_id), details, rule.account_id)
    return {"rule_id": rule_id, "discarded": total}
