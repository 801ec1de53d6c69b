"""Rules: `/api/v1/rules` writes to the compacted rules topic and reads the rules view."""

from __future__ import annotations

import threading
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from analytics import audit, rules_topic
from analytics.api.deps import Services, services
from analytics.api.quotas import check_rule_count
from analytics.api.scope import AccountQ, account_scope, visible
from analytics.errors import Conflict, InvalidField, NotFound
from analytics.rule_ids import next_rule_id
from disparo.access import ApiKey, Permission
from disparo.api_access import allow
from disparo.limits import filters_problem, headers_problem, refuse_long_url
from disparo.rule_codec import encode_rule
from disparo.schemas import Rule, RuleFields, check_secret, generate_secret, now_utc
from disparo.targets import url_refusal

router = APIRouter(tags=["rules"])
MASKED = "********"  # how every header value reads back; sent back, it keeps the value
Admin = Annotated[ApiKey, Depends(allow(Permission.MANAGE))]
Reader = Annotated[ApiKey, Depends(allow(Permission.READ))]
_id_lock = threading.Lock()


def _filters_bounded(value: dict[str, list[str]]) -> dict[str, list[str]]:
    problem = filters_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


# A rule's filters within the limits (they become SQL in dry runs and coverage queries).
Filters = Annotated[dict[str, list[str]], AfterValidator(_filters_bounded)]


class RuleBody(RuleFields):
    """A rule as sent to the API: held to the target limits of design.md."""

    @field_validator("url", mode="before")
    @classmethod
    def _url_bounded(cls, value: Any) -> Any:
        return refuse_long_url(value)

    @field_validator("headers")
    @classmethod
    def _headers_sendable(cls, value: dict[str, str]) -> dict[str, str]:
        problem = headers_problem(value)
        if problem is not None:
            raise ValueError(problem)
        return value

    filters: Filters = Field(default_factory=dict)


class RuleCreate(RuleBody):
    """A new rule; `id` and `secret` are generated when left out."""

    id: int | None = Field(None, gt=0, lt=2**53)
    secret: str | None = None

    @field_validator("secret")
    @classmethod
    def _secret_ok(cls, value: str | None) -> str | None:
        return None if value is None else check_secret(value)


class RuleUpdate(RuleBody):
    """A full replacement of a rule's fields; the secret is kept when left out."""

    secret: str | None = None

    @field_validator("secret")
    @classmethod
    def _secret_ok(cls, value: str | None) -> str | None:
        return None if value is None else check_secret(value)


def masked(secret: str) -> str:
    """A secret shown without revealing it: prefix and four characters."""
    return secret[:10] + "…"


def view(rule: Rule, reveal: bool = False) -> dict[str, Any]:
    """The API form of a rule: header values masked; the secret in full only when created."""
    out = rule.model_dump(mode="json", exclude={"previous_secret"})
    out["secret"] = rule.secret if reveal else masked(rule.secret)
    out["headers"] = dict.fromkeys(rule.headers, MASKED)
    return out


def kept_headers(sent: dict[str, str], current: dict[str, str]) -> dict[str, str]:
    """Headers of an update: a value sent back masked keeps the value the rule has."""
    return {
        name: current[name] if value == MASKED and name in current else value
        for name, value in sent.items()
    }


def write_rule(svc: Services, rule: Rule) -> None:
    """Publish a rule, secrets sealed, and wait until the rules view holds it."""
    value = encode_rule(rule, svc.box)
    rules_topic.write_rule(svc.producer, svc.topics.rules, svc.rules, rule.id, value)


def _check_target(svc: Services, body: RuleBody) -> None:
    """A URL whose host is a literal IP is refused now if no attempt could ever reach it."""
    refused = url_refusal(str(body.url), svc.allowlist)
    if refused is not None:
        raise InvalidField("url", refused)


def found_rule(svc: Services, rule_id: int, key: ApiKey) -> Rule:
    """The rule, if it exists for this key (another account's rule does not: 404)."""
    rule = svc.rules.get(rule_id)
    if rule is None or not visible(key, rule.account_id):
        raise NotFound(f"no rule with id {rule_id}; GET /api/v1/rules lists them")
    return rule


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


@router.post("/api/v1/rules", status_code=201)
def create_rule(
    body: RuleCreate, actor: Admin, svc: Annotated[Services, Depends(services)]
) -> dict[str, Any]:
    """Create a rule; the response is the only place its secret is shown in full."""
    if body.id is not None and actor.account_id is not None:
        raise InvalidField("id", "only platform keys choose rule ids; leave 'id' out")
    account = _account_of(body, actor)
    with _id_lock:
        check_rule_count(svc, account)
        if body.id is not None and svc.rules.get(body.id) is not None:
            raise Conflict(f"rule id {body.id} exists; leave 'id' out to get a new one")
        _check_target(svc, body)
        taken = lambda rule_id: svc.rules.get(rule_id) is not None  # noqa: E731
        rule_id = body.id or next_rule_id(svc.producer, svc.topics.rule_ids, taken)
        fields = {
            **body.model_dump(exclude={"id", "secret", "paused_reason"}),
            "account_id": account,
            "paused_reason": _pause_reason(body, actor),
        }
        rule = Rule(
            id=rule_id, secret=body.secret or generate_secret(), activated_at=now_utc(), **fields
        )
        write_rule(svc, rule)
    audit.record(
        svc.store, actor, "rule.create", str(rule.id), {"after": view(rule)}, rule.account_id
    )
    return view(rule, reveal=True)


@router.get("/api/v1/rules")
def list_rules(
    key: Reader, svc: Annotated[Services, Depends(services)], account_id: AccountQ = None
) -> dict[str, Any]:
    """Every rule the key may see (or one account's); secrets and header values masked."""
    scope = account_scope(key, account_id)
    rules = [r for r in svc.rules.all() if scope is None or r.account_id == scope]
    return {"items": [view(r) for r in rules]}


@router.get("/api/v1/rules/{rule_id}")
def get_rule(
    rule_id: int, key: Reader, svc: Annotated[Services, Depends(services)]
) -> dict[str, Any]:
    """One rule; secret and header values masked."""
    return view(found_rule(svc, rule_id, key))


@router.put("/api/v1/rules/{rule_id}")
def update_rule(
    rule_id: int, body: RuleUpdate, actor: Admin, svc: Annotated[Services, Depends(services)]
) -> dict[str, Any]:
    """Replace a rule's fields (activate/deactivate with `active`)."""
    current = found_rule(svc, rule_id, actor)
    _check_target(svc, body)
    account = _account_of(body, actor, current.account_id)
    if account != current.account_id:
        check_rule_count(svc, account)
    fields = {
        **body.model_dump(exclude={"secret", "headers", "paused_reason"}),
        "account_id": account,
        "paused_reason": _pause_reason(body, actor, current),
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
    write_rule(svc, rule)
    details: dict[str, Any] = {"before": view(current), "after": view(rule)}
    if rule.secret != current.secret:
        details["secret_replaced"] = True
    audit.record(svc.store, actor, "rule.update", str(rule_id), details, rule.account_id)
    return view(rule)


@router.delete("/api/v1/rules/{rule_id}", status_code=204)
def delete_rule(
    rule_id: int, actor: Admin, svc: Annotated[Services, Depends(services)]
) -> Response:
    """Delete a rule (a tombstone on the compacted topic)."""
    current = found_rule(svc, rule_id, actor)
    rules_topic.write_rule(svc.producer, svc.topics.rules, svc.rules, rule_id, None)
    details = {"before": view(current)}
    audit.record(svc.store, actor, "rule.delete", str(rule_id), details, current.account_id)
    return Response(status_code=204)


class Rotation(BaseModel):
    """A secret rotation: the new secret (generated when left out)."""

    model_config = ConfigDict(extra="forbid")

    secret: str | None = None

    @field_validator("secret")
    @classmethod
    def _secret_ok(cls, value: str | None) -> str | None:
        return None if value is None else check_secret(value)


@router.post("/api/v1/rules/{rule_id}/rotate-secret")
def rotate_secret(
    rule_id: int,
    actor: Admin,
    svc: Annotated[Services, Depends(services)],
    body: Rotation | None = None,
) -> dict[str, Any]:
    """A new signing secret, shown once; both sign webhooks until the overlap ends."""
    current = found_rule(svc, rule_id, actor)
    until = now_utc() + svc.secret_overlap
    new_secret = (body.secret if body else None) or generate_secret()
    if new_secret == current.secret:
        raise InvalidField("secret", "the new secret must differ from the current one")
    rule = current.changed(
        secret=new_secret, previous_secret=current.secret, previous_secret_until=until
    )
    write_rule(svc, rule)
    details = {"version": rule.version, "previous_secret_until": until.isoformat()}
    audit.record(svc.store, actor, "rule.rotate_secret", str(rule_id), details, current.account_id)
    return {**view(rule), "secret": new_secret, "previous_secret_until": until.isoformat()}
