"""The API's key check: a FastAPI dependency per route, naming the permission it needs.

Every stage that serves `/api/v1` routes (the analytics API, the producers' HTTP ingest)
declares its routes' permissions with `allow`; the app reads keys from `app.state.keys`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from analytics.control.access import ApiKey, Permission, allows, roles_for
from analytics.control.keys_view import KeysView

_bearer = HTTPBearer(auto_error=False, description="An API key: `Bearer dsp_...`")
HOW_TO_GET_ONE = "an admin creates keys with `disparo keys create --name NAME --role ROLE`"


def _unauthorized(message: str) -> HTTPException:
    return HTTPException(401, message, headers={"WWW-Authenticate": "Bearer"})


def key_of(request: Request, credentials: HTTPAuthorizationCredentials | None) -> ApiKey:
    """The active key a request presents; 401 with what to do when there is none."""
    if credentials is None:
        if request.headers.get("authorization"):
            raise _unauthorized("the Authorization header must be `Bearer <API key>`")
        raise _unauthorized(f"no API key: send `Authorization: Bearer <key>`; {HOW_TO_GET_ONE}")
    keys: KeysView | None = getattr(request.app.state, "keys", None)
    found = keys.holder(credentials.credentials) if keys is not None else None
    if found is None:
        raise _unauthorized(
            "unknown API key: check that it was copied whole (keys start with `dsp_`); "
            + HOW_TO_GET_ONE
        )
    if found.revoked_at is not None:
        raise _unauthorized(
            f"API key {found.name!r} ({found.id}) was revoked at "
            f"{found.revoked_at.isoformat(timespec='seconds')}; ask an admin for a new one"
        )
    return found


def allow(permission: Permission) -> Callable[..., Any]:
    """A dependency admitting keys whose role grants `permission`; it returns the key."""

    def check(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> ApiKey:
        key = key_of(request, credentials)
        if not allows(key.role, permission):
            needed = " or ".join(roles_for(permission))
            raise HTTPException(
                403, f"this needs the {needed} role; key {key.name!r} has the {key.role} role"
            )
        return key

    check.permission = permission  # type: ignore[attr-defined]
    return check


def permission_of(route: APIRoute) -> Permission | None:
    """The permission a route declared with `allow`, or None if it declared none."""
    pending = [route.dependant]
    while pending:
        dependant = pending.pop()
        found = getattr(dependant.call, "permission", None)
        if isinstance(found, Permission):
            return found
        pending.extend(dependant.dependencies)
    return None
