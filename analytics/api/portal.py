"""Portal links: `/api/v1/accounts/{id}/portal-links` (admin) and the page they open."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Path, Request

from analytics.api.deps import Admin, Svc
from analytics.api.routing import api_router
from analytics.control import portal_links
from analytics.control.portal_links import PortalLinkRequest

router = api_router(tags=["accounts"])
IdPath = Annotated[str, Path(pattern=r"^[A-Za-z0-9._-]{1,64}$")]
LinkPath = Annotated[str, Path(pattern=r"^key_[0-9a-f]{16}$")]


@router.post("/api/v1/accounts/{account_id}/portal-links", status_code=201)
def create_link(
    account_id: IdPath, body: PortalLinkRequest, actor: Admin, svc: Svc, request: Request
) -> dict[str, Any]:
    """A link that opens the page signed in for the account (and rules) until it expires;
    its `url` is shown once."""
    return portal_links.create(svc, account_id, body, actor, str(request.base_url))


@router.get("/api/v1/accounts/{account_id}/portal-links")
def list_links(account_id: IdPath, actor: Admin, svc: Svc) -> dict[str, Any]:
    """The account's links with their state (active, expired, revoked), never their keys."""
    return {"items": portal_links.listed(svc, account_id, actor)}


@router.delete("/api/v1/accounts/{account_id}/portal-links/{link_id}")
def revoke_link(account_id: IdPath, link_id: LinkPath, actor: Admin, svc: Svc) -> dict[str, Any]:
    """End a link now."""
    return portal_links.revoke(svc, account_id, link_id, actor)
