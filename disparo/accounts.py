"""Accounts: a customer of the platform, its limits and where its notifications go."""

from __future__ import annotations

import functools
import json
import re
from datetime import datetime
from typing import Annotated, Any

from pydantic import (
    AnyHttpUrl,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
)

from disparo.lifecycle import Lifecycle
from disparo.limits import refuse_long_url
from disparo.redaction import shown_url
from disparo.schemas import DEFAULT_ACCOUNT, AccountId, check_secret, now_utc
from disparo.secret_box import SecretBox
from disparo.targets import AllowEntry, parse_entry

MAX_ACCOUNT_ENTRIES = 50
MAX_SEARCH_KEYS = 3
MAX_EMBED_ORIGINS = 10
# An origin as CSP frame-ancestors takes it: no path, no wildcard, nothing to inject.
_ORIGIN = re.compile(r"https?://[A-Za-z0-9.-]{1,253}(:[0-9]{1,5})?")
MAX_SEARCH_VALUE_CHARS = 200  # longer values are not kept for search
NOTIFICATION_TYPES = (
    "rule.paused", "rule.failing", "rule.recovered", "sla.breached", "sla.recovered",
)  # fmt: skip
MAX_SLO_SECONDS = 30 * 86400  # the history kept: a longer target could never be judged


class Slo(BaseModel):
    """The account's receipt target: 95 % of its dispatches reach the customer (first 2xx)
    within `p95_seconds` of the order event, and none stays undelivered past
    `max_undelivered_seconds`."""

    model_config = ConfigDict(hide_input_in_errors=True, extra="forbid", frozen=True)

    p95_seconds: float = Field(gt=0, le=MAX_SLO_SECONDS)
    max_undelivered_seconds: float = Field(gt=0, le=MAX_SLO_SECONDS)


class AccountLimits(BaseModel):
    """What one account may do; None = no limit. Set by a platform admin."""

    model_config = ConfigDict(hide_input_in_errors=True, extra="forbid", frozen=True)

    max_rules: int | None = Field(None, ge=0, le=100_000)
    resends_per_minute: int | None = Field(None, ge=1, le=1_000_000)
    events_per_second: int | None = Field(None, ge=1, le=1_000_000)


class AccountFields(BaseModel):
    """What an admin sets on an account."""

    model_config = ConfigDict(hide_input_in_errors=True, extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    limits: AccountLimits = Field(default_factory=AccountLimits)
    notification_url: Annotated[AnyHttpUrl | None, BeforeValidator(refuse_long_url)] = Field(
        None, description="receives signed rule.paused, rule.failing and rule.recovered webhooks"
    )
    failing_threshold: float = Field(
        0.5, gt=0, lt=1, description="failure ratio above which a rule is reported failing"
    )
    target_allowlist: list[str] = Field(
        default_factory=list,
        max_length=MAX_ACCOUNT_ENTRIES,
        description="non-public targets this account's rules may reach, on top of "
        "DISPARO_TARGET_ALLOWLIST (IP:port, CIDR:port, [IPv6]:port; `*` as the port: every "
        "port); set by platform admins only",
    )

    search_keys: list[str] = Field(
        default_factory=list,
        max_length=MAX_SEARCH_KEYS,
        description="payload paths (e.g. payload.tracking_code) whose values find this "
        "account's dispatches, besides the order number",
    )

    embed_origins: list[str] = Field(
        default_factory=list,
        max_length=MAX_EMBED_ORIGINS,
        description="origins (https://app.example.com) whose pages may frame the portal "
        "links of this account (CSP frame-ancestors); every other page is never framed",
    )

    lifecycle: Lifecycle | None = Field(
        None,
        description="the account's order statuses ranked lowest first, and the allowed steps "
        "back; rules with status_guard forward_only never send an older status than one "
        "already delivered",
    )

    slo: Slo | None = Field(
        None,
        description="the receipt target: p95_seconds from the order event (occurred_at) to "
        "the customer's first 2xx, and max_undelivered_seconds a dispatch may stay open; "
        "GET /api/v1/sla measures it",
    )

    @field_validator("embed_origins")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        for origin in value:
            if not _ORIGIN.fullmatch(origin):
                raise ValueError(
                    f"{origin[:60]!r} is not an origin: scheme, host and optional port, "
                    "e.g. https://app.example.com or http://127.0.0.1:3000, nothing after"
                )
        return value

    @field_validator("search_keys")
    @classmethod
    def _search_paths(cls, value: list[str]) -> list[str]:
        for path in value:
            if not path.startswith("payload.") or not 9 <= len(path) <= 200:
                raise ValueError(
                    f"{path[:40]!r} must be a payload path (payload.a.b) of at most 200 characters"
                )
        if len(set(value)) != len(value):
            raise ValueError("a search key is named twice")
        return value

    @field_validator("target_allowlist")
    @classmethod
    def _entries_parse(cls, value: list[str]) -> list[str]:
        entries = [text.strip() for text in value]
        for text in entries:
            parse_entry(text)  # its ValueError names the entry and the forms that work
        return entries

    def allow_entries(self) -> tuple[AllowEntry, ...]:
        """The parsed `target_allowlist` (asked per job by the worker: most have none)."""
        return _parsed(tuple(self.target_allowlist)) if self.target_allowlist else ()


class Account(AccountFields):
    """An account as stored in the accounts topic (its notification secret sealed there)."""

    id: AccountId
    notification_secret: str | None = None
    created_at: AwareDatetime = Field(default_factory=now_utc)
    updated_at: AwareDatetime = Field(default_factory=now_utc)

    @field_validator("notification_secret")
    @classmethod
    def _secret_ok(cls, value: str | None) -> str | None:
        return None if value is None else check_secret(value)

    @classmethod
    def implicit(cls, account_id: str) -> Account:
        """An account nobody described yet (e.g. `default`): its id as name, no limits."""
        return cls(id=account_id, name=account_id, created_at=_EPOCH, updated_at=_EPOCH)

    def public(self) -> dict[str, Any]:
        """The API form: the notification secret never shown after it was made, URL credentials
        masked."""
        out = self.model_dump(mode="json", exclude={"notification_secret"})
        out["has_notification_secret"] = self.notification_secret is not None
        if self.notification_url is not None:
            out["notification_url"] = shown_url(str(self.notification_url))
        return out


@functools.lru_cache(maxsize=1024)
def _parsed(entries: tuple[str, ...]) -> tuple[AllowEntry, ...]:
    return tuple(parse_entry(text) for text in entries)


_EPOCH = datetime.fromisoformat("1970-01-01T00:00:00+00:00")
_SECRET_CONTEXT = "account/{}/notification_secret"


def encode_account(account: Account, box: SecretBox) -> bytes:
    """The accounts-topic value: the notification secret sealed, bound to the account."""
    data = account.model_dump(mode="json")
    if data.get("notification_secret"):
        context = _SECRET_CONTEXT.format(account.id)
        data["notification_secret"] = box.seal(data["notification_secret"], context)
    return json.dumps(data, separators=(",", ":")).encode()


def decode_account(raw: bytes, box: SecretBox) -> Account:
    """An account from its accounts-topic value; ValueError for one that is not an account."""
    data = json.loads(raw)
    if not isinstance(data, dict):
        raise ValueError("an account record must be a JSON object")
    if isinstance(data.get("notification_secret"), str):
        context = _SECRET_CONTEXT.format(data.get("id"))
        data["notification_secret"] = box.open(data["notification_secret"], context)
    return Account.model_validate(data)


__all__ = ["DEFAULT_ACCOUNT", "Account", "AccountFields", "AccountLimits"]
