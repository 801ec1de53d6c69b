"""Accounts: `/api/v1/accounts` (platform admins set limits; account admins their own alerts)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Path

from analytics.api.deps import Admin, Reader, Svc
from analytics.api.routing import api_router
from analytics.control.account_book import AccountCreate
from disparo.accounts import AccountFields

router = api_router(tags=["accounts"])
IdPath = Annotated[str, Path(pattern=r"^[A-Za-z0-9._-]{1,64}$")]


@router.post("/api/v1/accounts", status_code=201)
def create_account(body: AccountCreate, actor: Admin, svc: Svc) -> dict[str, Any]:
    """Describe an account: name, limits, notification URL (its secret is shown once)."""
    return svc.account_book.create(body, actor)


@router.get("/api/v1/accounts")
def list_accounts(key: Reader, svc: Svc) -> dict[str, Any]:
    """Every account (a platform key): described ones and those a rule or a key names;
    or the key's own account."""
    if key.account_id is not None:
        return {"items": [svc.accounts.of(key.account_id).public()]}
    named = {r.account_id for r in svc.rules.all()} | {
        k.account_id for k in svc.key_ring.view.all() if k.account_id is not None
    }
    ids = sorted(named | {a.id for a in svc.accounts.all()})
    return {"items": [svc.accounts.of(i).public() for i in ids]}


@router.get("/api/v1/accounts/{account_id}")
def get_account(account_id: IdPath, key: Reader, svc: Svc) -> dict[str, Any]:
    """One account: name, limits, notification URL (never its secret)."""
    return svc.account_book.found(account_id, key).public()


@router.put("/api/v1/accounts/{account_id}")
def update_account(
    account_id: IdPath, body: AccountFields, actor: Admin, svc: Svc
) -> dict[str, Any]:
    """Replace an account's settings; an account's own admin may not change its limits."""
    return svc.account_book.update(account_id, body, actor)


@router.post("/api/v1/accounts/{account_id}/rotate-notification-secret")
def rotate_notification_secret(account_id: IdPath, actor: Admin, svc: Svc) -> dict[str, Any]:
    """A new secret for the account's notification webhooks, shown once."""
    return svc.account_book.rotate_secret(account_id, actor)
