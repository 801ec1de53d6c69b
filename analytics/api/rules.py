"""Rules: `/api/v1/rules` (create, list, read, replace, delete, rotate the secret)."""

from __future__ import annotations

from typing import Any

from fastapi import Response

from analytics.api.deps import AccountQ, Admin, Reader, Svc
from analytics.api.routing import api_router
from analytics.control import rule_changes
from analytics.control.rule_forms import Rotation, RuleCreate, RuleUpdate, view
from analytics.control.scope import account_scope

router = api_router(tags=["rules"])


@router.post("/api/v1/rules", status_code=201)
def create_rule(body: RuleCreate, actor: Admin, svc: Svc) -> dict[str, Any]:
    """Create a rule; the response is the only place its secret is shown in full."""
    return view(rule_changes.create(svc, body, actor), reveal=True)


@router.get("/api/v1/rules")
def list_rules(key: Reader, svc: Svc, account_id: AccountQ = None) -> dict[str, Any]:
    """Every rule the key may see (or one account's); secrets and header values masked."""
    scope = account_scope(key, account_id)
    rules = [
        r
        for r in svc.rules.all()
        if (scope is None or r.account_id == scope) and key.sees_rule(r.id)
    ]
    return {"items": [view(r) for r in rules]}


@router.get("/api/v1/rules/{rule_id}")
def get_rule(rule_id: int, key: Reader, svc: Svc) -> dict[str, Any]:
    """One rule; secret and header values masked."""
    return view(svc.rule_book.found(rule_id, key))


@router.put("/api/v1/rules/{rule_id}")
def update_rule(rule_id: int, body: RuleUpdate, actor: Admin, svc: Svc) -> dict[str, Any]:
    """Replace a rule's fields (activate/deactivate with `active`)."""
    return view(rule_changes.update(svc, rule_id, body, actor))


@router.delete("/api/v1/rules/{rule_id}", status_code=204)
def delete_rule(rule_id: int, actor: Admin, svc: Svc) -> Response:
    """Delete a rule (a tombstone on the compacted topic)."""
    rule_changes.delete(svc, rule_id, actor)
    return Response(status_code=204)


@router.post("/api/v1/rules/{rule_id}/rotate-secret")
def rotate_secret(
    rule_id: int, actor: Admin, svc: Svc, body: Rotation | None = None
) -> dict[str, Any]:
    """A new signing secret, shown once; both sign webhooks until the overlap ends."""
    secret, version = (body.secret, body.version) if body else (None, None)
    rule = rule_changes.rotate_secret(svc, rule_id, secret, actor, version)
    until = rule.previous_secret_until.isoformat() if rule.previous_secret_until else None
    return {**view(rule), "secret": rule.secret, "previous_secret_until": until}
