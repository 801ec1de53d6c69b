"""API keys: `/api/v1/keys` (admin) and `/api/v1/me` (any key: who am I)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel, ConfigDict, Field

from analytics import audit
from analytics.api.deps import Services, services
from analytics.api.scope import visible
from analytics.errors import Conflict, InvalidField, KafkaRefused, NotFound
from disparo import keys as key_topic
from disparo.access import (
    ACCOUNT_PATTERN,
    GRANTS,
    KEY_NAME_PATTERN,
    ApiKey,
    Permission,
    Role,
    new_key,
    revoked,
)
from disparo.api_access import allow
from disparo.errors import KafkaUnavailable

router = APIRouter(tags=["keys"])
Admin = Annotated[ApiKey, Depends(allow(Permission.MANAGE))]


class KeyCreate(BaseModel):
    """A key to create: a name people recognise, its role, and (optionally) its account."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=KEY_NAME_PATTERN)
    role: Role
    account_id: str | None = Field(None, pattern=ACCOUNT_PATTERN)


def save_key(svc: Services, key: ApiKey) -> None:
    """Write a key record and wait until this replica's view holds it."""
    try:
        key_topic.save_key(svc.producer, svc.topics.api_keys, svc.keys, key)
    except KafkaUnavailable as exc:
        raise KafkaRefused(str(exc)) from exc


@router.post("/api/v1/keys", status_code=201)
def create_key(
    body: KeyCreate, actor: Admin, svc: Annotated[Services, Depends(services)]
) -> dict[str, Any]:
    """Create a key; the response is the only place the key itself is shown.

    An account's admin makes keys of its own account only; a platform admin any.
    """
    account = body.account_id
    if actor.account_id is not None:
        if account is not None and account != actor.account_id:
            raise InvalidField("account_id", f"this key manages account {actor.account_id!r} only")
        account = actor.account_id
    if key_topic.name_taken(svc.keys, body.name):
        raise Conflict(f"an active key is named {body.name!r}; names identify actors in the audit")
    secret, key = new_key(body.name, body.role, account)
    save_key(svc, key)
    details = {"name": key.name, "role": key.role}
    audit.record(svc.store, actor, "key.create", key.id, details, key.account_id)
    return {**key.public(), "key": secret}


@router.get("/api/v1/keys")
def list_keys(actor: Admin, svc: Annotated[Services, Depends(services)]) -> dict[str, Any]:
    """Every key this admin may see, revoked ones included; never a key or its hash."""
    return {"items": [k.public() for k in svc.keys.all() if visible(actor, k.account_id)]}


@router.delete("/api/v1/keys/{key_id}")
def revoke_key(
    key_id: Annotated[str, Path(max_length=40)],
    actor: Admin,
    svc: Annotated[Services, Depends(services)],
) -> dict[str, Any]:
    """Revoke a key: every API replica refuses it within seconds."""
    key = svc.keys.get(key_id)
    if key is None or not visible(actor, key.account_id):
        raise NotFound(f"no key with id {key_id}; GET /api/v1/keys lists them")
    if not key.active:
        return key.public()
    platform = [k for k in svc.keys.all() if k.active and k.role == "admin" and not k.account_id]
    if key.role == "admin" and not key.account_id and len(platform) == 1:
        raise Conflict("this is the last active platform admin key; create another one first")
    gone = revoked(key)
    save_key(svc, gone)
    details = {"name": key.name, "role": key.role}
    audit.record(svc.store, actor, "key.revoke", key.id, details, key.account_id)
    return gone.public()


@router.get("/api/v1/me")
def who_am_i(key: Annotated[ApiKey, Depends(allow(Permission.SIGNED_IN))]) -> dict[str, Any]:
    """The key this request signed in with: its name, role and what that role may do."""
    return {**key.public(), "may": sorted(p.value for p in GRANTS[key.role])}
