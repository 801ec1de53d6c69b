"""What people do to rules: create, update, delete, rotate a secret, release or discard
what a paused rule holds. Each checks, writes through the rule book, and is audited."""

from __future__ import annotations

import threading
from typing import Any

from analytics.control import audit
from analytics.control.held_keeper import discard
from analytics.control.quotas import check_rule_count
from analytics.control.rule_forms import (
    RuleBody,
    RuleCreate,
    RuleUpdate,
    kept_headers,
    kept_url,
    view,
)
from analytics.control.services import Services
from analytics.errors import Conflict, InvalidField
from analytics.history import held_rows
from disparo.access import ApiKey
from disparo.rule_codec import unusable
from disparo.schemas import Rule, generate_secret, now_utc
from disparo.targets import url_refusal

DISCARD_BATCH = 10_000
RESEAL_NEEDS_SECRET = (
    "this rule's record was written outside the API and its secret does not open: "
    "save it with PUT and its signing secret (`secret`) to seal it again"
)
_id_lock = threading.Lock()


def _check_target(svc: Services, body: RuleBody, account: str) -> None:
    """A URL whose host is a literal IP is refused now if no attempt could ever reach it."""
    refused = url_refusal(str(body.url), svc.account_book.allowlist_of(account))
    if refused is not None:
        raise InvalidField("url", refused)


def _account_of(body: RuleBody, key: ApiKey, current: str | None = None) -> str:
    """The account a rule written with this key belongs to: an account key's own."""
    sent = "account_id" in body.model_fields_set
    if key.account_id is None:  # a platform key: as sent, else as it was (new: default)
        return body.account_id if sent or current is None else current
    if sent and body.account_id != key.account_id:
        raise InvalidField("account_id", f"this key manages account {key.account_id!r} only")
    return key.account_id


def _pause_reason(body: RuleBody, key: ApiKey, current: Rule | None = None) -> str | None:
    """Why a rule is paused: as sent, else as it was, else who paused it; none if unpaused."""
    if not body.paused:
        return None
    if body.paused_reason:
        return body.paused_reason
    if current is not None and current.paused and current.paused_reason:
        return current.paused_reason
    return f"paused by {key.name}"


def create(svc: Services, body: RuleCreate, actor: ApiKey) -> Rule:
    """A new rule, written and audited (the caller shows its secret once)."""
    if body.id is not None and actor.account_id is not None:
        raise InvalidField("id", "only platform keys choose rule ids; leave 'id' out")
    account = _account_of(body, actor)
    book = svc.rule_book
    with _id_lock:
        check_rule_count(svc, account)
        if body.id is not None and book.get(body.id) is not None:
            raise Conflict(f"rule id {body.id} exists; leave 'id' out to get a new one")
        _check_target(svc, body, account)
        rule_id = body.id or book.new_id()
        fields = {
            **body.model_dump(exclude={"id", "secret", "paused_reason"}),
            "account_id": account,
            "paused_reason": _pause_reason(body, actor),
        }
        rule = Rule(
            id=rule_id, secret=body.secret or generate_secret(), activated_at=now_utc(), **fields
        )
        book.write(rule)
    audit.record(
        svc.store, actor, "rule.create", str(rule.id), {"after": view(rule)}, rule.account_id
    )
    return rule


def update(svc: Services, rule_id: int, body: RuleUpdate, actor: ApiKey) -> Rule:
    """Replace a rule's fields (activate/deactivate with `active`)."""
    current = svc.rule_book.found(rule_id, actor)
    if unusable(current) and body.secret is None:
        raise InvalidField("secret", RESEAL_NEEDS_SECRET)
    account = _account_of(body, actor, current.account_id)
    _check_target(svc, body, account)
    if account != current.account_id:
        check_rule_count(svc, account)
    fields = {
        **body.model_dump(exclude={"secret", "headers", "paused_reason", "version"}),
        "account_id": account,
        "paused_reason": _pause_reason(body, actor, current),
        "url": kept_url(str(body.url), str(current.url)),
    }
    reason = None if body.active else current.deactivated_reason
    rule = Rule(
        id=rule_id,
        version=current.version + 1,
        secret=body.secret or current.secret,
        previous_secret=None if body.secret else current.previous_secret,
        previous_secret_until=None if body.secret else current.previous_secret_until,
        headers=kept_headers(body.headers, current.headers),
        deactivated_reason=reason,
        activated_at=now_utc() if body.active and not current.active else current.activated_at,
        resumed_at=now_utc() if current.paused and not body.paused else current.resumed_at,
        **fields,
    )
    svc.rule_book.write(rule, body.version)
    details: dict[str, Any] = {"before": view(current), "after": view(rule)}
    if rule.secret != current.secret:
        details["secret_replaced"] = True
    audit.record(svc.store, actor, "rule.update", str(rule_id), details, rule.account_id)
    return rule


def delete(svc: Services, rule_id: int, actor: ApiKey) -> None:
    """Delete a rule (a tombstone on the compacted topic), audited."""
    current = svc.rule_book.found(rule_id, actor)
    svc.rule_book.delete(rule_id)
    details = {"before": view(current)}
    audit.record(svc.store, actor, "rule.delete", str(rule_id), details, current.account_id)


def rotate_secret(
    svc: Services, rule_id: int, secret: str | None, actor: ApiKey, version: int | None = None
) -> Rule:
    """A new signing secret; both sign webhooks until the overlap ends."""
    current = svc.rule_book.found(rule_id, actor)
    if unusable(current):
        raise Conflict(RESEAL_NEEDS_SECRET)
    until = now_utc() + svc.secret_overlap
    new_secret = secret or generate_secret()
    if new_secret == current.secret:
        raise InvalidField("secret", "the new secret must differ from the current one")
    rule = current.changed(
        secret=new_secret, previous_secret=current.secret, previous_secret_until=until
    )
    svc.rule_book.write(rule, version)
    details = {"version": rule.version, "previous_secret_until": until.isoformat()}
    audit.record(svc.store, actor, "rule.rotate_secret", str(rule_id), details, current.account_id)
    return rule


def held_count(svc: Services, rule_id: int) -> int:
    """How many of a rule's dispatches are held now."""
    return held_rows.held_counts(svc.store, now_utc(), rule_id).get(rule_id, 0)


def release(
    svc: Services, rule_id: int, actor: ApiKey, version: int | None = None
) -> tuple[Rule, int]:
    """Unpause a rule: its held dispatches go out oldest first at its `release_rate`."""
    current = svc.rule_book.found(rule_id, actor)
    if not current.paused:
        raise Conflict(f"rule {rule_id} is not paused; nothing is held back")
    rule = current.changed(paused=False, paused_reason=None, resumed_at=now_utc())
    svc.rule_book.write(rule, version)
    count = held_count(svc, rule_id)
    details = {"held": count, "release_rate": rule.release_rate, "reason": current.paused_reason}
    audit.record(svc.store, actor, "rule.release_held", str(rule_id), details, rule.account_id)
    return rule, count


def discard_held(svc: Services, rule_id: int, actor: ApiKey) -> int:
    """End every held dispatch of a rule unsent (a `discarded` failure row each)."""
    rule = svc.rule_book.found(rule_id, actor)
    why = f"discarded while held by {actor.name}"
    total = 0
    while rows := held_rows.oldest_held(svc.store, rule_id, now_utc(), DISCARD_BATCH):
        discard(svc.store, rows, why, actor.name, svc.jobs)
        total += len(rows)
        if len(rows) < DISCARD_BATCH:
            break
    details = {"discarded": total}
    audit.record(svc.store, actor, "rule.discard_held", str(rule_id), details, rule.account_id)
    return total
