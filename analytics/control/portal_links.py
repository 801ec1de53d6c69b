"""Portal links: an account's page for its own customers' UI, signed in without a key to
paste (design.md, "Reaching the platform's customers").

A link is a key of its own (role viewer or operator, the account, optionally some of its
rules) that ends by itself within 24 h and can be revoked. The key travels in the link's
fragment (`/portal/<id>#key=dsp_...`): browsers never send a fragment to a server, so it
is in no access log and no Referer; the path names the link so that the page it opens can
be framed by the account's `embed_origins` only.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from analytics.control import audit
from analytics.control.scope import account_scope
from analytics.control.services import Services
from analytics.errors import InvalidField, NotFound
from disparo.access import ApiKey, new_portal_key
from disparo.schemas import now_utc

MAX_TTL_S = 86_400


class PortalLinkRequest(BaseModel):
    """A link to make: who it signs in as, for how long, and which rules it shows."""

    model_config = ConfigDict(hide_input_in_errors=True, extra="forbid")

    role: Literal["viewer", "operator"]
    ttl_s: int = Field(3600, ge=1, le=MAX_TTL_S, description="seconds until the link ends")
    rule_ids: list[int] | None = Field(
        None, min_length=1, max_length=100, description="only these rules (default: all)"
    )


def create(
    svc: Services, account_id: str, body: PortalLinkRequest, actor: ApiKey, base_url: str
) -> dict[str, Any]:
    """A new link for the account; its URL is shown once (it holds the link's key)."""
    account = _account(svc, account_id, actor)
    rule_ids = None
    if body.rule_ids is not None:
        for rule_id in body.rule_ids:
            rule = svc.rules.get(rule_id)
            if rule is None or rule.account_id != account:
                raise InvalidField("rule_ids", f"account {account!r} has no rule {rule_id}")
        rule_ids = tuple(sorted(set(body.rule_ids)))
    # Whole seconds: the expiry shown is the one enforced.
    expires_at = (now_utc() + timedelta(seconds=body.ttl_s)).replace(microsecond=0)
    secret, key = new_portal_key(body.role, account, expires_at, rule_ids)
    svc.key_ring.save(key)
    details = {"role": body.role, "expires_at": _iso(expires_at), "rule_ids": rule_ids}
    audit.record(svc.store, actor, "portal_link.create", key.id, details, account)
    url = f"{base_url.rstrip('/')}/portal/{key.id}#key={secret}"
    return {"id": key.id, "url": url, "expires_at": _iso(expires_at), **_scope(key)}


def listed(svc: Services, account_id: str, actor: ApiKey) -> list[dict[str, Any]]:
    """The account's links, newest first (never their keys)."""
    account = _account(svc, account_id, actor)
    links = [k for k in svc.key_ring.view.all() if k.portal and k.account_id == account]
    return [_shown(k) for k in sorted(links, key=lambda k: k.created_at, reverse=True)]


def revoke(svc: Services, account_id: str, link_id: str, actor: ApiKey) -> dict[str, Any]:
    """End a link now: its page answers with the sign-in and says it was revoked."""
    account = _account(svc, account_id, actor)
    key = svc.key_ring.view.get(link_id)
    if key is None or not key.portal or key.account_id != account:
        raise NotFound(f"no portal link {link_id!r} of account {account!r}")
    return _shown(svc.key_ring.revoke(link_id, actor))


def _account(svc: Services, account_id: str, actor: ApiKey) -> str:
    scope = account_scope(actor, account_id)  # another account's: 404
    assert scope is not None
    return svc.account_book.found(scope, actor).id


def _scope(key: ApiKey) -> dict[str, Any]:
    return {"role": key.role, "account_id": key.account_id, "rule_ids": key.rule_ids}


def _shown(key: ApiKey) -> dict[str, Any]:
    state = "revoked" if key.revoked_at else "expired" if key.expired(now_utc()) else "active"
    return {
        "id": key.id,
        "created_at": _iso(key.created_at),
        "expires_at": _iso(key.expires_at) if key.expires_at else None,
        "state": state,
        **_scope(key),
    }


def _iso(at: datetime) -> str:
    return at.isoformat(timespec="seconds")


def frame_ancestors(svc: Services, link_id: str) -> str:
    """The CSP `frame-ancestors` of the page a link opens: its account's embed origins
    (expired and revoked links too, so the frame shows why it signs in); 'none' otherwise."""
    key = svc.key_ring.view.get(link_id)
    if key is None or not key.portal or key.account_id is None:
        return "'none'"
    account = svc.account_book.view.get(key.account_id)
    origins = account.embed_origins if account is not None else []
    return " ".join(origins) or "'none'"
