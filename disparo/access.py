"""API keys and roles: who may do what (design notes, "Access")."""

from __future__ import annotations

import enum
import hashlib
import re
import secrets
from datetime import datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from disparo.schemas import now_utc

KEY_PREFIX = "dsp_"
KEY_RANDOM_BYTES = 32
MAX_KEY_CHARS = 200  # a presented key longer than this is not ours: refused unhashed
Role = Literal["publisher", "viewer", "operator", "admin"]
ROLES: tuple[Role, ...] = ("publisher", "viewer", "operator", "admin")
ACCOUNT_PATTERN = r"^[A-Za-z0-9._-]{1,64}$"
KEY_NAME_PATTERN = r"^[A-Za-z0-9@._ -]{1,100}$"


class Permission(enum.Enum):
    """What a route needs; each role grants a fixed set of these."""

    INGEST = "ingest"  # POST /api/v1/events
    READ = "read"  # history, summary, breakdown, export, rules (masked), audit
    RESEND = "resend"  # manual and bulk resends
    MANAGE = "manage"  # rules, keys
    SIGNED_IN = "signed_in"  # any valid key: who am I


GRANTS: dict[Role, frozenset[Permission]] = {
    "publisher": frozenset({Permission.INGEST, Permission.SIGNED_IN}),
    "viewer": frozenset({Permission.READ, Permission.SIGNED_IN}),
    "operator": frozenset({Permission.READ, Permission.RESEND, Permission.SIGNED_IN}),
    "admin": frozenset(Permission),
}


def allows(role: Role, permission: Permission) -> bool:
    """Whether a key of `role` may do what `permission` guards."""
    return permission in GRANTS[role]


def roles_for(permission: Permission) -> list[Role]:
    """The roles that may do what `permission` guards, lowest first."""
    return [role for role in ROLES if allows(role, permission)]


class ApiKey(BaseModel):
    """One key as stored in the api-keys topic: never the key itself, only its hash."""

    model_config = ConfigDict(hide_input_in_errors=True, extra="forbid", frozen=True)

    id: str = Field(pattern=r"^key_[0-9a-f]{16}$")
    name: str = Field(pattern=KEY_NAME_PATTERN)
    role: Role
    account_id: str | None = Field(None, pattern=ACCOUNT_PATTERN)
    hash: str = Field(pattern=r"^sha256:[0-9a-f]{64}$")
    created_at: AwareDatetime
    revoked_at: AwareDatetime | None = None
    # A portal link's key: it ends by itself, and may be limited to some of its account's rules.
    portal: bool = False
    expires_at: AwareDatetime | None = None
    rule_ids: tuple[int, ...] | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def expired(self, now: datetime) -> bool:
        """Whether the key ended by itself (a portal link past its expiry)."""
        return self.expires_at is not None and now >= self.expires_at

    def sees_rule(self, rule_id: int) -> bool:
        """Whether this key's scope takes in the rule (every rule, unless it names some)."""
        return self.rule_ids is None or rule_id in self.rule_ids

    def public(self) -> dict[str, object]:
        """What the API and the CLI show of a key: everything but its hash."""
        return self.model_dump(mode="json", exclude={"hash"})


def hash_key(key: str) -> str:
    """The stored form of a key. Keys carry 256 random bits, so one SHA-256 is enough."""
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


def looks_like_key(text: str) -> bool:
    """Whether a presented bearer token has the shape of one of our keys."""
    return (
        text.startswith(KEY_PREFIX)
        and len(text) <= MAX_KEY_CHARS
        and re.fullmatch(r"[A-Za-z0-9_-]+", text) is not None
    )


def new_key(name: str, role: Role, account_id: str | None = None) -> tuple[str, ApiKey]:
    """A fresh key (shown once) and its stored record."""
    key = KEY_PREFIX + secrets.token_urlsafe(KEY_RANDOM_BYTES)
    return key, record_for(key, name, role, account_id)


def new_portal_key(
    role: Role, account_id: str, expires_at: datetime, rule_ids: tuple[int, ...] | None
) -> tuple[str, ApiKey]:
    """A fresh portal link's key (it goes in the link only) and its stored record."""
    key, record = new_key("portal link", role, account_id)
    name = f"portal link {record.id.removeprefix('key_')[:8]}"
    scope = {"portal": True, "expires_at": expires_at, "rule_ids": rule_ids, "name": name}
    return key, record.model_copy(update=scope)


def record_for(
    key: str, name: str, role: Role, account_id: str | None = None, at: datetime | None = None
) -> ApiKey:
    """The stored record of a given key (its id is derived from the hash, so stable)."""
    digest = hash_key(key)
    return ApiKey(
        id="key_" + digest.removeprefix("sha256:")[:16],
        name=name,
        role=role,
        account_id=account_id,
        hash=digest,
        created_at=at or now_utc(),
    )


def revoked(key: ApiKey, at: datetime | None = None) -> ApiKey:
    """The same key, revoked now (kept in the topic so lists show it as revoked)."""
    return key.model_copy(update={"revoked_at": at or now_utc()})
