"""The API's key check: a FastAPI dependency per route, naming the permission it needs.

Every stage that serves `/api/v1` routes (the analytics API, the producers' HTTP ingest)
declares its routes' permissions with `allow`; the app reads keys from `app.state.keys`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.types import ASGIApp, Receive, Scope, Send

from disparo.access import ApiKey, Permission, allows, roles_for
from disparo.keys_view import KeysView
from disparo.schemas import now_utc

_bearer = HTTPBearer(auto_error=False, description="An API key: `Bearer dsp_...`")
HOW_TO_GET_ONE = "an admin creates keys with `disparo keys create --name NAME --role ROLE`"


def _unauthorized(message: str) -> HTTPException:
    return HTTPException(401, message, headers={"WWW-Authenticate": "Bearer"})


def presented_key(keys: KeysView | None, authorization: str | None) -> ApiKey | str:
    """The active key an Authorization header presents, or why it is refused (a 401)."""
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        if authorization:
            return "the Authorization header must be `Bearer <API key>`"
        return f"no API key: send `Authorization: Bearer <key>`; {HOW_TO_GET_ONE}"
    found = keys.holder(token.strip()) if keys is not None else None
    if found is None:
        return (
            "unknown API key: check that it was copied whole (keys start with `dsp_`); "
            + HOW_TO_GET_ONE
        )
    if found.portal and found.revoked_at is not None:
        return "this portal link was revoked; ask the platform for a new link"
    if found.portal and found.expired(now_utc()):
        return (
            f"this portal link expired at {found.expires_at:%Y-%m-%d %H:%M} UTC; "
            "ask the platform for a new link"
        )
    if found.revoked_at is not None:
        return (
            f"API key {found.name!r} ({found.id}) was revoked at "
            f"{found.revoked_at.isoformat(timespec='seconds')}; ask an admin for a new one"
        )
    return found


def key_of(request: Request) -> ApiKey:
    """The active key a request presents; 401 with what to do when there is none."""
    keys: KeysView | None = getattr(request.app.state, "keys", None)
    found = presented_key(keys, request.headers.get("authorization"))
    if isinstance(found, str):
        raise _unauthorized(found)
    return found


def allow(permission: Permission) -> Callable[..., Any]:
    """A dependency admitting keys whose role grants `permission`; it returns the key."""

    def check(
        request: Request,
        # Declared so that the OpenAPI document shows the bearer scheme; read by key_of.
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> ApiKey:
        key = key_of(request)
        if not allows(key.role, permission):
            needed = " or ".join(roles_for(permission))
            raise HTTPException(
                403, f"this needs the {needed} role; key {key.name!r} has the {key.role} role"
            )
        if key.rule_ids is not None and _route_of(request) not in RULE_SCOPED_ROUTES:
            raise HTTPException(
                403, f"this link shows rules {list(key.rule_ids)} only; this page is not part of it"
            )
        return key

    check.permission = permission  # type: ignore[attr-defined]
    return check


# What a key limited to some rules may call: each of these narrows its answer to the key's
# rules (`disparo.access.ApiKey.sees_rule`); every other route refuses such a key.
RULE_SCOPED_ROUTES = frozenset(
    {
        ("GET", "/api/v1/me"),
        ("GET", "/api/v1/accounts"),
        ("GET", "/api/v1/dispatches"),
        ("GET", "/api/v1/dispatches/summary"),
        ("GET", "/api/v1/dispatches/breakdown"),
        ("GET", "/api/v1/dispatches/export.csv"),
        ("GET", "/api/v1/dispatches/stream"),
        ("GET", "/api/v1/dispatches/{dispatch_id}"),
        ("GET", "/api/v1/rules"),
        ("GET", "/api/v1/rules/{rule_id}"),
        ("GET", "/api/v1/orders/{order_id}"),
        ("POST", "/api/v1/resend"),
    }
)


def _route_of(request: Request) -> tuple[str, str]:
    route = request.scope.get("route")
    return request.method, getattr(route, "path", "")


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


class KeyFirst:
    """Answers 401 to an `/api/` request without an active key before its body is read:
    an unauthenticated client cannot make the process receive or parse a large body."""

    def __init__(self, app: ASGIApp, keys: KeysView | None) -> None:
        self.app = app
        self.keys = keys

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/api/"):
            header = dict(scope["headers"]).get(b"authorization")
            found = presented_key(self.keys, header.decode("latin-1") if header else None)
            if isinstance(found, str):
                body = json.dumps({"error": found}).encode()
                headers = [
                    (b"content-type", b"application/json"),
                    (b"content-length", b"%d" % len(body)),
                    (b"www-authenticate", b"Bearer"),
                    (b"connection", b"close"),  # the body it may still send is not read
                ]
                await send({"type": "http.response.start", "status": 401, "headers": headers})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)
