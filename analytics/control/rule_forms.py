"""Rule bodies as the API takes them, and the form it shows rules in (secrets masked)."""

from __future__ import annotations

import hashlib
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from disparo.limits import headers_problem, refuse_long_url
from disparo.redaction import shown_url, url_matches_shown
from disparo.schemas import SECRET_PREFIX, Rule, RuleFields, check_secret


def _secret_ok(value: str | None) -> str | None:
    return None if value is None else check_secret(value)


# A secret a request may leave out (kept or generated), checked when given.
OptionalSecret = Annotated[str | None, AfterValidator(_secret_ok)]
# The rule version a change is based on (compare-and-set), when the caller names it.
BasedOn = Annotated[
    int | None,
    Field(
        ge=1,
        lt=2**53,
        description="the version this change is based on; another current version answers 409",
    ),
]
MASKED = "********"  # how every header value reads back; sent back, it keeps the value


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


class RuleCreate(RuleBody):
    """A new rule; `id` and `secret` are generated when left out."""

    id: int | None = Field(None, gt=0, lt=2**53)
    secret: OptionalSecret = None


class RuleUpdate(RuleBody):
    """A full replacement of a rule's fields; the secret is kept when left out."""

    secret: OptionalSecret = None
    version: BasedOn = None


def masked(secret: str) -> str:
    """A secret shown without one character of it: its prefix and a short fingerprint."""
    fingerprint = hashlib.sha256(secret.encode()).hexdigest()[:8]
    return f"{SECRET_PREFIX}… (sha256 {fingerprint})"


def view(rule: Rule, reveal: bool = False) -> dict[str, Any]:
    """The API form of a rule: header values and URL credentials masked; the secret and URL in
    full only when created."""
    out = rule.model_dump(mode="json", exclude={"previous_secret"})
    out["secret"] = rule.secret if reveal else masked(rule.secret)
    out["url"] = str(rule.url) if reveal else shown_url(str(rule.url))
    out["headers"] = dict.fromkeys(rule.headers, MASKED)
    return out


def kept_url(sent: str, current: str) -> str:
    """The URL of an update: the masked form of the current URL sent back keeps it."""
    return current if url_matches_shown(sent, current) else sent


def kept_headers(sent: dict[str, str], current: dict[str, str]) -> dict[str, str]:
    """Headers of an update: a value sent back masked keeps the value the rule has."""
    return {
        name: current[name] if value == MASKED and name in current else value
        for name, value in sent.items()
    }


class Rotation(BaseModel):
    """A secret rotation: the new secret (generated when left out)."""

    model_config = ConfigDict(hide_input_in_errors=True, extra="forbid")

    secret: OptionalSecret = None
    version: BasedOn = None
