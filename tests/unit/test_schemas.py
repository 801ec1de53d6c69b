import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from disparo.errors import InvalidMessage
from disparo.schemas import (
    DeliveryTarget,
    DispatchJob,
    Rule,
    attempt_id_for,
    dispatch_id_for,
    generate_secret,
    parse_event,
    parse_job,
)
from tests.factories import event, rule


def _raw(**fields: object) -> bytes:
    base = {
        "event_id": str(uuid.uuid4()),
        "event_type": "order.dispatched",
        "order_id": "A-1",
        "occurred_at": "2026-11-28T10:00:00-03:00",
    }
    base.update(fields)
    return json.dumps({k: v for k, v in base.items() if v is not None}).encode()


def test_valid_event_parses_with_timezone_kept() -> None:
    parsed = parse_event(_raw(payload={"x": 1}))
    assert parsed.order_id == "A-1"
    assert parsed.occurred_at.utcoffset() is not None
    assert parsed.payload == {"x": 1}


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        (b"not json", "Invalid JSON"),
        (_raw(order_id=None), "order_id: Field required"),
        (_raw(order_id=""), "order_id"),
        (_raw(event_id="nope"), "event_id"),
        (_raw(occurred_at="2026-11-28T10:00:00"), "occurred_at"),
        (_raw(unexpected=1), "unexpected: Extra inputs are not permitted"),
        (b"[1,2]", "Input should be an object"),
        (None, "empty message"),
    ],
)
def test_invalid_events_raise_a_reason_naming_the_field(raw: bytes | None, needle: str) -> None:
    with pytest.raises(InvalidMessage) as caught:
        parse_event(raw)
    assert needle in caught.value.reason
    assert caught.value.reason.startswith("order event: ")


def test_dispatch_id_is_stable_per_event_and_rule() -> None:
    e = event()
    assert dispatch_id_for(e.event_id, 7) == dispatch_id_for(e.event_id, 7)
    assert dispatch_id_for(e.event_id, 7) != dispatch_id_for(e.event_id, 8)
    assert dispatch_id_for(e.event_id, 7).startswith("msg_")


def test_attempt_ids_differ_per_attempt_and_resend() -> None:
    d = "msg_x"
    ids = {attempt_id_for(d, 1, None), attempt_id_for(d, 2, None), attempt_id_for(d, 2, "r1")}
    assert len(ids) == 3


def test_a_job_names_its_rule_and_never_carries_its_url_headers_or_secret() -> None:
    r = rule(headers={"x-tenant": "tenant-token-9"}, timeout_s=3, max_attempts=4)
    job = DispatchJob.first(event(), r)
    assert (job.attempt, job.rule.rule_id, job.rule.version) == (1, r.id, r.version)
    resolved = job.with_target(DeliveryTarget.of(r))
    assert resolved.target.headers == {"x-tenant": "tenant-token-9"}
    wire = resolved.model_dump_json()
    for private in (r.secret, "tenant-token-9", str(r.url)):
        assert private not in wire
    assert parse_job(wire.encode()) == job
    with pytest.raises(LookupError, match="not resolved"):
        _ = job.target


def test_a_job_written_before_secrets_left_the_topics_still_parses() -> None:
    r = rule()
    old = DispatchJob.first(event(), r).model_dump(mode="json")
    del old["rule"]
    old["target"] = {"rule_id": r.id, "url": str(r.url), "secret": r.secret, "headers": {}}
    parsed = parse_job(json.dumps(old).encode())
    assert parsed.rule.rule_id == r.id
    assert r.secret not in parsed.model_dump_json()


def test_a_rotation_signs_with_both_secrets_until_the_overlap_ends() -> None:
    now = datetime(2026, 11, 29, 12, tzinfo=UTC)
    old = rule()
    rotated = old.changed(
        secret=generate_secret(),
        previous_secret=old.secret,
        previous_secret_until=now + timedelta(hours=24),
    )
    assert rotated.version == old.version + 1
    during = DeliveryTarget.of(rotated, now)
    assert (during.secret, during.previous_secret) == (rotated.secret, old.secret)
    assert DeliveryTarget.of(rotated, now + timedelta(hours=25)).previous_secret is None


@pytest.mark.parametrize(
    ("secret", "needle"),
    [
        ("abc", "must start with 'whsec_'"),
        ("whsec_!!!", "not valid base64"),
        ("whsec_YWJj", "24 to 64 bytes"),
    ],
)
def test_rule_secret_must_be_standard_webhooks_form(secret: str, needle: str) -> None:
    with pytest.raises(ValidationError) as caught:
        rule(secret=secret)
    assert needle in str(caught.value)


def test_generated_secret_is_accepted() -> None:
    assert rule(secret=generate_secret()).secret.startswith("whsec_")


def test_rule_rejects_reserved_headers_and_blank_types() -> None:
    with pytest.raises(ValidationError, match="set by disparo"):
        rule(headers={"Webhook-Signature": "x"})
    with pytest.raises(ValidationError, match="must not be blank"):
        rule(event_types=[" "])
    with pytest.raises(ValidationError):
        Rule(id=1, name="x", event_types=["*"], url="ftp://x", secret=generate_secret())
