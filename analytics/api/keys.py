"""API keys: `/api/v1/keys` (admin) and `/api/v1/me` (any key: who am I)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Path
from pydantic import BaseModel, ConfigDict, Field

from analytics.api.deps import Admin, SignedIn, Svc
from analytics.api.routing import api_router
from disparo.access import ACCOUNT_PATTERN, GRANTS, KEY_NAME_PATTERN, Role

router = api_router(tags=["keys"])


class KeyCreate(BaseModel):
    """A key to create: a name people recognise, its role, and (optionally) its account."""

    model_config = ConfigDict(hide_input_in_errors=True, extra="forbid")

    name: str = Field(pattern=KEY_NAME_PATTERN)
    role: Role
    account_id: str | None = Field(None, pattern=ACCOUNT_PATTERN)


@router.post("/api/v1/keys", status_code=201)
def create_key(body: KeyCreate, actor: Admin, svc: Svc) -> dict[str, Any]:
    """Create a key; the response is the only place the key itself is shown.

    An account's admin makes keys of its own account only; a platform admin any.
    """
    secret, key = svc.key_ring.create(body.name, body.role, body.account_id, actor)
    return {**key.public(), "key": secret}


@router.get("/api/v1/keys")
def list_keys(actor: Admin, svc: Svc) -> dict[str, Any]:
    """Every key this admin may see, revoked ones included; never a key or its hash."""
    return {"items": [k.public() for k in svc.key_ring.visible_to(actor)]}


@router.delete("/api/v1/keys/{key_id}")
def revoke_key(
    key_id: Annotated[str, Path(max_length=40)], actor: Admin, svc: Svc
) -> dict[str, Any]:
    """Revoke a key: every API replica refuses it within seconds."""
    return svc.key_ring.revoke(key_id, actor).public()


@router.get("/api/v1/me")
def who_am_i(key: SignedIn) -> dict[str, Any]:
    """The key this request signed in with: its name, role and what that role may do."""
    return {**key.public(), "may": sorted(p.value for p in GRANTS[key.role])}
