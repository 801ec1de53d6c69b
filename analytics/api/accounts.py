"""Accounts: `/api/v1/accounts` (platform admins set limits; account admins their own alerts)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path
from pydantic import Field

from analytics import audit
from analytics.api.deps import Services, services
from analytics.api.scope import visible
from analytics.errors import Conflict, InvalidField, NotFound
from analytics.rules_topic import write_record
from disparo.access import ApiKey, Permission
from disparo.accounts import Account, AccountFields, encode_account
from disparo.api_access import allow
from disparo.schemas import AccountId, generate_secret, now_utc
from disparo.targets import url_refusal

router = APIRouter(tags=["accounts"])
Admin = Annotated[ApiKey, Depends(allow(Permission.MANAGE))]
Reader = Annotated[ApiKey, Depends(allow(Permission.READ))]
IdPath = Annotated[str, Path(pattern=r"^[A-Za-z0-9._-]{1,64}$")]


class AccountCreate(AccountFields):
    """A new account: its id (what events, rules and keys name) and its settings."""

    id: AccountId = Field(description="1-64 of [A-Za-z0-9._-]; events and rules carry it")


def _platform_only(key: ApiKey, what: str) -> None:
    if key.account_id is not None:
        raise HTTPException(403, f"{what} needs a platform admin key (one without an account)")


def _check_url(svc: Services, body: AccountFields) -> None:
    if body.notification_url is None:
        return
    refused = url_refusal(str(body.notification_url), svc.allowlist)
    if refused is not None:
        raise InvalidField("notification_url", refused)


def save_account(svc: Services, account: Account) -> None:
    """Publish an account, its secret sealed, and wait until this replica's view holds it."""
    value = encode_account(account, svc.box)
    write_record(svc.producer, svc.topics.accounts, svc.accounts, account.id, value)


def _shown(account: Account, new_secret: bool) -> dict[str, Any]:
    out = account.public()
    if new_secret:  # the only time the notification secret is shown
        out["notification_secret"] = account.notification_secret
    return out


@router.post("/api/v1/accounts", status_code=201)
def create_account(
    body: AccountCreate, actor: Admin, svc: Annotated[Services, Depends(services)]
) -> dict[str, Any]:
    """Describe an account: name, limits, notification URL (its secret is shown once)."""
    _platform_only(actor, "creating accounts")
    if svc.accounts.get(body.id) is not None:
        raise Conflict(f"account {body.id!r} exists; PUT /api/v1/accounts/{body.id} changes it")
    _check_url(svc, body)
    secret = generate_secret() if body.notification_url is not None else None
    account = Account(**body.model_dump(), notification_secret=secret)
    save_account(svc, account)
    audit.record(svc.store, actor, "account.create", account.id, account.public(), account.id)
    return _shown(account, secret is not None)


@router.get("/api/v1/accounts")
def list_accounts(key: Reader, svc: Annotated[Services, Depends(services)]) -> dict[str, Any]:
    """Every account (a platform key): described ones and those a rule or a key names;
    or the key's own account."""
    if key.account_id is not None:
        return {"items": [svc.accounts.of(key.account_id).public()]}
    named = {r.account_id for r in svc.rules.all()} | {
        k.account_id for k in svc.keys.all() if k.account_id is not None
    }
    ids = sorted(named | {a.id for a in svc.accounts.all()})
    return {"items": [svc.accounts.of(i).public() for i in ids]}


def _found(svc: Services, account_id: str, key: ApiKey) -> Account:
    """The account as this key may see it: an account key its own only, a platform key any
    (one nobody described reads as its implicit form, and a PUT describes it)."""
    if not visible(key, account_id):
        raise NotFound(f"no account {account_id!r}")
    return svc.accounts.of(account_id)


@router.get("/api/v1/accounts/{account_id}")
def get_account(
    account_id: IdPath, key: Reader, svc: Annotated[Services, Depends(services)]
) -> dict[str, Any]:
    """One account: name, limits, notification URL (never its secret)."""
    return _found(svc, account_id, key).public()


@router.put("/api/v1/accounts/{account_id}")
def update_account(
    account_id: IdPath,
    body: AccountFields,
    actor: Admin,
    svc: Annotated[Services, Depends(services)],
) -> dict[str, Any]:
    """Replace an account's settings; an account's own admin may not change its limits."""
    current = _found(svc, account_id, actor)
    if actor.account_id is not None and body.limits != current.limits:
        raise HTTPException(403, "an account's limits are set by a platform admin")
    _check_url(svc, body)
    secret = current.notification_secret
    fresh = body.notification_url is not None and secret is None
    if fresh:
        secret = generate_secret()
    described = svc.accounts.get(account_id) is not None
    account = Account(
        id=account_id,
        notification_secret=secret,
        created_at=current.created_at if described else now_utc(),
        updated_at=now_utc(),
        **body.model_dump(),
    )
    save_account(svc, account)
    details = {"before": current.public(), "after": account.public()}
    audit.record(svc.store, actor, "account.update", account_id, details, account_id)
    return _shown(account, fresh)


@router.post("/api/v1/accounts/{account_id}/rotate-notification-secret")
def rotate_notification_secret(
    account_id: IdPath, actor: Admin, svc: Annotated[Services, Depends(services)]
) -> dict[str, Any]:
    """A new secret for the account's notification webhooks, shown once."""
    current = _found(svc, account_id, actor)
    if current.notification_url is None:
        raise Conflict(f"account {account_id!r} has no notification_url; set one first")
    account = current.model_copy(
        update={"notification_secret": generate_secret(), "updated_at": now_utc()}
    )
    save_account(svc, account)
    audit.record(svc.store, actor, "account.rotate_secret", account_id, {}, account_id)
    return _shown(account, True)
