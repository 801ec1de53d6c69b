"""Accounts: described by platform admins (limits) and by their own admins (alerts)."""

from __future__ import annotations

from typing import Any

from kafka import KafkaProducer
from pydantic import Field

from analytics.control import audit
from analytics.control.records import write_record
from analytics.control.scope import visible
from analytics.errors import Conflict, Forbidden, InvalidField, NotFound
from analytics.history.store import Store
from disparo.access import ApiKey
from disparo.accounts import Account, AccountFields, encode_account
from disparo.accounts_view import AccountsView
from disparo.redaction import url_matches_shown
from disparo.schemas import AccountId, generate_secret, now_utc
from disparo.secret_box import SecretBox
from disparo.targets import AllowEntry, url_refusal
from disparo.topics import Topics


class AccountCreate(AccountFields):
    """A new account: its id (what events, rules and keys name) and its settings."""

    id: AccountId = Field(description="1-64 of [A-Za-z0-9._-]; events and rules carry it")


def shown(account: Account, new_secret: bool) -> dict[str, Any]:
    """The API form of an account; its notification secret only when just made."""
    out = account.public()
    if new_secret:
        out["notification_secret"] = account.notification_secret
    return out


class AccountBook:
    """The accounts topic's writer: every account change, checked, audited, seen back."""

    def __init__(
        self,
        producer: KafkaProducer,
        topics: Topics,
        view: AccountsView,
        box: SecretBox,
        store: Store,
        allowlist: tuple[AllowEntry, ...] = (),
    ) -> None:
        self.producer = producer
        self.topics = topics
        self.view = view
        self.box = box
        self.store = store
        self.allowlist = allowlist

    def save(self, account: Account) -> None:
        """Publish an account, its secret sealed, and wait until this replica's view holds it."""
        value = encode_account(account, self.box)
        write_record(self.producer, self.topics.accounts, self.view, account.id, value)

    def allowlist_of(self, account_id: str) -> tuple[AllowEntry, ...]:
        """The non-public targets an account's rules may reach: everyone's and its own."""
        return self.allowlist + self.view.of(account_id).allow_entries()

    def found(self, account_id: str, key: ApiKey) -> Account:
        """The account as this key may see it: an account key its own only, a platform key
        any (one nobody described reads as its implicit form, and a PUT describes it)."""
        if not visible(key, account_id):
            raise NotFound(f"no account {account_id!r}")
        return self.view.of(account_id)

    def _check_url(self, body: AccountFields) -> None:
        if body.notification_url is None:
            return
        allowed = self.allowlist + body.allow_entries()
        refused = url_refusal(str(body.notification_url), allowed)
        if refused is not None:
            raise InvalidField("notification_url", refused)

    def create(self, body: AccountCreate, actor: ApiKey) -> dict[str, Any]:
        """Describe a new account (platform admins); its notification secret shown once."""
        if actor.account_id is not None:
            raise Forbidden("creating accounts needs a platform admin key (one without an account)")
        if self.view.get(body.id) is not None:
            raise Conflict(f"account {body.id!r} exists; PUT /api/v1/accounts/{body.id} changes it")
        self._check_url(body)
        secret = generate_secret() if body.notification_url is not None else None
        account = Account(**body.model_dump(), notification_secret=secret)
        self.save(account)
        audit.record(self.store, actor, "account.create", account.id, account.public(), account.id)
        return shown(account, secret is not None)

    def update(self, account_id: str, body: AccountFields, actor: ApiKey) -> dict[str, Any]:
        """Replace an account's settings; an account's own admin may not change its limits."""
        current = self.found(account_id, actor)
        if actor.account_id is not None and body.limits != current.limits:
            raise Forbidden("an account's limits are set by a platform admin")
        if actor.account_id is not None and body.target_allowlist != current.target_allowlist:
            raise Forbidden("an account's target_allowlist is set by a platform admin")
        self._check_url(body)
        secret = current.notification_secret
        fresh = body.notification_url is not None and secret is None
        if fresh:
            secret = generate_secret()
        described = self.view.get(account_id) is not None
        fields = body.model_dump()
        if body.notification_url is not None and current.notification_url is not None:
            sent, kept = str(body.notification_url), str(current.notification_url)
            fields["notification_url"] = kept if url_matches_shown(sent, kept) else sent
        account = Account(
            id=account_id,
            notification_secret=secret,
            created_at=current.created_at if described else now_utc(),
            updated_at=now_utc(),
            **fields,
        )
        self.save(account)
        details = {"before": current.public(), "after": account.public()}
        audit.record(self.store, actor, "account.update", account_id, details, account_id)
        return shown(account, fresh)

    def rotate_secret(self, account_id: str, actor: ApiKey) -> dict[str, Any]:
        """A new secret for the account's notification webhooks, shown once."""
        current = self.found(account_id, actor)
        if current.notification_url is None:
            raise Conflict(f"account {account_id!r} has no notification_url; set one first")
        account = current.model_copy(
            update={"notification_secret": generate_secret(), "updated_at": now_utc()}
        )
        self.save(account)
        audit.record(self.store, actor, "account.rotate_secret", account_id, {}, account_id)
        return shown(account, True)
