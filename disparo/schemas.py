"""Message schemas of the topic contracts (see shared design notes)."""

from __future__ import annotations

import base64
import binascii
import secrets
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    AfterValidator,
    AnyHttpUrl,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from disparo.errors import InvalidMessage
from disparo.filters import FilterSpec
from disparo.lifecycle import StatusGuard
from disparo.limits import MAX_ATTEMPT, filters_problem

# The namespace of dispatch and attempt ids (uuid5); public so SQL can compute them too.
ID_NAMESPACE = uuid.UUID("5b0b7c4e-5d52-4c1e-9a53-6f0d1d6a0c11")
_NAMESPACE = ID_NAMESPACE
SECRET_PREFIX = "whsec_"
# `held`: a paused rule's dispatch, kept to be released; `superseded`: ended unsent because
# a newer event of its order was delivered for the rule; `regressed`: ended unsent because
# the customer already holds a later status of the order (none of the three is a failure).
Status = Literal["success", "failure", "held", "superseded", "regressed"]
Ordering = Literal["none", "per_order"]
M = TypeVar("M", bound=BaseModel)


def _uuid_text(value: str) -> str:
    return str(uuid.UUID(value))


UuidText = Annotated[str, AfterValidator(_uuid_text)]
DEFAULT_ACCOUNT = "default"
# The event type a test webhook's attempt is recorded under (the body is a sample event).
TEST_EVENT_TYPE = "disparo.test"
TEST_HEADER = "disparo-test"  # `disparo-test: 1` on every test webhook, on no other
# The rule id of an account's own notifications (rule.failing...): no rule has it.
NOTIFICATIONS_RULE_ID = 0
# Which customer of the platform an event, rule or attempt belongs to (design: "Accounts").
AccountId = Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]{1,64}$")]


def now_utc() -> datetime:
    """The current time, timezone-aware in UTC."""
    return datetime.now(UTC)


class OrderEvent(BaseModel):
    """One order or logistics event as platform teams publish it."""

    model_config = ConfigDict(hide_input_in_errors=True, extra="forbid", frozen=True)

    event_id: uuid.UUID
    event_type: str = Field(min_length=1, max_length=200)
    order_id: str = Field(min_length=1, max_length=200)
    order_status: str | None = Field(None, max_length=200)
    occurred_at: AwareDatetime
    payload: dict[str, Any] = Field(default_factory=dict)
    account_id: AccountId = DEFAULT_ACCOUNT


def generate_secret() -> str:
    """A new random signing secret in Standard Webhooks form."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def secret_bytes(secret: str) -> bytes:
    """The raw key behind a `whsec_<base64>` secret."""
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)


def check_secret(value: str) -> str:
    """Validate a `whsec_<base64>` secret of 24 to 64 bytes."""
    if not value.startswith(SECRET_PREFIX):
        raise ValueError("must start with 'whsec_' followed by base64")
    try:
        raw = secret_bytes(value)
    except (binascii.Error, ValueError):
        raise ValueError("the part after 'whsec_' is not valid base64") from None
    if not 24 <= len(raw) <= 64:
        raise ValueError(f"must encode 24 to 64 bytes, not {len(raw)}")
    return value


def _filters_valid(value: Any) -> Any:
    problem = filters_problem(value) if isinstance(value, dict) else None
    if problem is not None:
        raise ValueError(problem)
    return value


# A rule's filters: valid operators within the limits (they become SQL in dry runs). Checked
# before the type, so a bad filter reads as one message naming its path.
Filters = Annotated[dict[str, FilterSpec], BeforeValidator(_filters_valid)]


class RuleFields(BaseModel):
    """What a person sets on a rule; shared by the API's create and update bodies."""

    model_config = ConfigDict(hide_input_in_errors=True, extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    event_types: list[str] = Field(min_length=1, max_length=100)
    filters: Filters = Field(default_factory=dict)
    url: AnyHttpUrl
    headers: dict[str, str] = Field(default_factory=dict)
    active: bool = True
    timeout_s: float = Field(10.0, gt=0, le=60)
    max_attempts: int = Field(6, ge=1, le=20)
    account_id: AccountId = DEFAULT_ACCOUNT  # a rule matches only its own account's events
    # Order-aware delivery (design: "Order-aware rules").
    ordering: Ordering = "none"
    supersede: bool = False
    status_guard: StatusGuard = Field(
        "off",
        description="forward_only: never send an order status older than one the customer "
        "already got (ranked by the account's lifecycle)",
    )
    paused: bool = False
    paused_reason: str | None = Field(None, max_length=500)
    release_rate: float = Field(50.0, gt=0, le=10_000, description="held dispatches a second")
    max_per_second: float | None = Field(
        None,
        ge=0.01,
        le=10_000,
        description="the rule's steady delivery rate, held across all workers (null: no limit)",
    )

    @field_validator("event_types")
    @classmethod
    def _types_not_blank(cls, value: list[str]) -> list[str]:
        if any(not t.strip() for t in value):
            raise ValueError("event types must not be blank; use '*' for all")
        return value

    @field_validator("headers")
    @classmethod
    def _headers_not_reserved(cls, value: dict[str, str]) -> dict[str, str]:
        reserved = {"webhook-id", "webhook-timestamp", "webhook-signature", "content-type"}
        clash = sorted(k for k in value if k.lower() in reserved)
        if clash:
            raise ValueError(f"headers {clash} are set by disparo and cannot be overridden")
        return value


class Rule(RuleFields):
    """A routing rule: which events go to which endpoint, signed with which secret."""

    id: int = Field(gt=0)
    version: int = Field(1, ge=1, description="raised by every change; jobs name the version")
    secret: str
    previous_secret: str | None = Field(
        None, description="the secret before the last rotation, also signed with until below"
    )
    previous_secret_until: AwareDatetime | None = None
    deactivated_reason: str | None = Field(
        None, description="why disparo deactivated the rule by itself; cleared on reactivation"
    )
    activated_at: AwareDatetime | None = Field(None, description="when it was last made active")
    resumed_at: AwareDatetime | None = Field(None, description="when it was last unpaused")

    @field_validator("secret", "previous_secret")
    @classmethod
    def _secret_well_formed(cls, value: str | None) -> str | None:
        return None if value is None else check_secret(value)

    def changed(self, **fields: Any) -> Rule:
        """This rule with `fields` replaced and its version raised."""
        return self.model_copy(update={**fields, "version": self.version + 1})


class RuleRef(BaseModel):
    """Which rule (and which version of it) a job is for; never its URL, headers or secret."""

    model_config = ConfigDict(hide_input_in_errors=True, frozen=True)

    # 0 (NOTIFICATIONS_RULE_ID) names the account's notification endpoint, not a rule.
    rule_id: int = Field(ge=0)
    version: int = Field(1, ge=1)

    @classmethod
    def of(cls, rule: Rule) -> RuleRef:
        return cls(rule_id=rule.id, version=rule.version)


class DeliveryTarget(BaseModel):
    """The part of a rule a delivery needs: looked up by the worker, never sent in a topic."""

    model_config = ConfigDict(hide_input_in_errors=True, frozen=True)

    rule_id: int
    url: str
    headers: dict[str, str] = Field(default_factory=dict)
    secret: str
    previous_secret: str | None = None  # during a rotation's overlap: both sign
    timeout_s: float
    max_attempts: int
    deleted: bool = False  # the rule is gone: the job ends without an attempt
    refused: str | None = None  # why the job ends without an attempt (`target_changed`)
    ordering: Ordering = "none"
    supersede: bool = False
    status_guard: StatusGuard = "off"
    paused: bool = False  # its dispatches are held, not sent
    version: int = 1
    max_per_second: float | None = None  # the rule's rate across all workers

    @classmethod
    def of(cls, rule: Rule, now: datetime | None = None) -> DeliveryTarget:
        """The delivery target of a rule as it is at `now`."""
        until = rule.previous_secret_until
        overlapping = until is not None and until > (now or now_utc())
        return cls(
            rule_id=rule.id,
            url=str(rule.url),
            headers=rule.headers,
            secret=rule.secret,
            previous_secret=rule.previous_secret if overlapping else None,
            timeout_s=rule.timeout_s,
            max_attempts=rule.max_attempts,
            ordering=rule.ordering,
            supersede=rule.supersede,
            status_guard=rule.status_guard,
            paused=rule.paused,
            version=rule.version,
            max_per_second=rule.max_per_second,
        )

    @classmethod
    def unusable(cls, rule: Rule) -> DeliveryTarget:
        """The target of a rule whose stored secrets do not open: nothing to send with."""
        return cls(
            rule_id=rule.id, url="", secret="", timeout_s=1, max_attempts=1,
            refused=rule.deactivated_reason,
        )  # fmt: skip

    @classmethod
    def gone(cls, rule_id: int) -> DeliveryTarget:
        """The target of a deleted rule: nothing to send to."""
        return cls(rule_id=rule_id, url="", secret="", timeout_s=1, max_attempts=1, deleted=True)


def dispatch_id_for(event_id: uuid.UUID, rule_id: int) -> str:
    """The stable id of one (event, rule) pair, sent as `webhook-id`."""
    return f"msg_{uuid.uuid5(_NAMESPACE, f'{event_id}/{rule_id}').hex}"


def attempt_id_for(dispatch_id: str, attempt: int, resend_id: str | None) -> str:
    """The id of one attempt; replays of the same attempt share it."""
    return str(uuid.uuid5(_NAMESPACE, f"{dispatch_id}/{attempt}/{resend_id or ''}"))


class DispatchJob(BaseModel):
    """One webhook to deliver: an event for one rule's endpoint."""

    model_config = ConfigDict(hide_input_in_errors=True, frozen=True)

    dispatch_id: str
    attempt: int = Field(1, ge=1, le=MAX_ATTEMPT)
    manual: bool = False
    resend_id: str | None = None
    event: OrderEvent
    rule: RuleRef
    created_at: AwareDatetime = Field(default_factory=now_utc)
    not_before: AwareDatetime | None = None
    # Where the first attempt's job sits in its dispatch-jobs partition: the event's place
    # in its order's sequence (jobs of one order share a partition). Set by the worker.
    seq: int | None = Field(None, ge=0)
    # A test webhook (POST /rules/{id}/test): sent once now, recorded as TEST_EVENT_TYPE.
    test: bool = False
    # Filled in by the worker from its rules view; excluded from every dump, so a job on a
    # topic never carries the rule's URL, headers or secret.
    resolved: DeliveryTarget | None = Field(None, exclude=True)

    @model_validator(mode="before")
    @classmethod
    def _rule_of_older_jobs(cls, data: Any) -> Any:
        """Jobs written before secrets left the topics name their rule inside `target`."""
        if isinstance(data, dict) and "rule" not in data and isinstance(data.get("target"), dict):
            data = {**data, "rule": {"rule_id": data["target"].get("rule_id")}}
            data.pop("target")
        return data

    @classmethod
    def first(cls, event: OrderEvent, rule: Rule) -> DispatchJob:
        """The first-attempt job for an event matched by a rule."""
        return cls(
            dispatch_id=dispatch_id_for(event.event_id, rule.id),
            event=event,
            rule=RuleRef.of(rule),
        )

    @property
    def target(self) -> DeliveryTarget:
        """The rule as the worker resolved it for this attempt."""
        if self.resolved is None:
            raise LookupError(f"{self.dispatch_id}: rule {self.rule.rule_id} not resolved yet")
        return self.resolved

    def with_target(self, target: DeliveryTarget, seq: int | None = None) -> DispatchJob:
        """The job resolved to `target` (and given its place in its order, when known)."""
        update: dict[str, Any] = {"resolved": target}
        if seq is not None:
            update["seq"] = seq
        return self.model_copy(update=update)

    @property
    def attempt_id(self) -> str:
        return attempt_id_for(self.dispatch_id, self.attempt, self.resend_id)

    def retry_at(self, when: datetime) -> DispatchJob:
        """The job of the next attempt, not to be delivered before `when`."""
        return self.model_copy(update={"attempt": self.attempt + 1, "not_before": when})


class AttemptOutcome(BaseModel):
    """The record of one delivery attempt."""

    model_config = ConfigDict(hide_input_in_errors=True)

    attempt_id: UuidText
    dispatch_id: str
    attempt: int = Field(ge=1, le=MAX_ATTEMPT)
    manual: bool
    order_id: str
    order_status: str | None
    event_id: UuidText
    event_type: str
    rule_id: int
    url: str
    account_id: str = DEFAULT_ACCOUNT
    dispatched_at: AwareDatetime
    status: Status
    reason: str
    http_status: int | None = None
    error: str | None = None
    duration_ms: int
    final: bool
    request_excerpt: str = ""
    response_excerpt: str = ""
    request_headers: dict[str, str] = Field(
        default_factory=dict, description="headers sent, credential values masked"
    )
    retry_after_s: float | None = None
    retry_tier: str | None = None
    retry_at: AwareDatetime | None = None
    event: OrderEvent | None = None

    def event_text(self) -> str:
        """The event as JSON ("" without one)."""
        return self.event.model_dump_json() if self.event else ""


def parse_event(raw: bytes | None) -> OrderEvent:
    """Parse an OrderEvent, raising InvalidMessage with a readable reason."""
    return _parse(OrderEvent, raw, "order event")


def parse_job(raw: bytes | None) -> DispatchJob:
    """Parse a DispatchJob, raising InvalidMessage with a readable reason."""
    return _parse(DispatchJob, raw, "dispatch job")


def parse_outcome(raw: bytes | None) -> AttemptOutcome:
    """Parse an AttemptOutcome, raising InvalidMessage with a readable reason."""
    return _parse(AttemptOutcome, raw, "attempt outcome")


def _parse(model: type[M], raw: bytes | None, what: str) -> M:
    if raw is None:
        raise InvalidMessage(f"{what}: empty message (null value)")
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise InvalidMessage(f"{what}: {describe(exc)}") from None


def describe(exc: ValidationError) -> str:
    """One line naming each bad field and what is wrong with it."""
    parts = []
    for err in exc.errors()[:10]:
        where = ".".join(str(p) for p in err["loc"]) or "body"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)
