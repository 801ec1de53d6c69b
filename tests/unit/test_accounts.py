"""Accounts: limits as token buckets, rule health verdicts, sealed notification secrets."""

from __future__ import annotations

import pytest

from analytics.control.rate_limit import RateLimiter, first_refusal, over_limit
from analytics.control.rule_health import change, judge
from analytics.control.sla_watch import sla_change
from disparo.accounts import Account, decode_account, encode_account
from disparo.notifications import (
    account_notification_job,
    notification_job,
    notification_target,
)
from disparo.schemas import NOTIFICATIONS_RULE_ID, Rule, generate_secret, now_utc
from disparo.secret_box import SecretBox, SecretKeyMismatch, new_key_text


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_limit_admits_up_to_its_size_then_says_how_long_to_wait() -> None:
    clock = Clock()
    limiter = RateLimiter(clock)
    assert over_limit(limiter, "a", "events", 6, 10, "second") is None
    assert over_limit(limiter, "a", "events", 4, 10, "second") is None
    refusal = over_limit(limiter, "a", "events", 3, 10, "second")
    assert refusal is not None
    assert refusal.retry_after_s == 1
    assert "limit of 10 events per second" in refusal.message
    clock.now += 0.5  # 5 tokens back
    assert over_limit(limiter, "a", "events", 3, 10, "second") is None
    assert over_limit(limiter, "b", "events", 10, 10, "second") is None  # its own bucket


def test_a_refused_request_takes_nothing_and_a_request_over_the_limit_never_fits() -> None:
    clock = Clock()
    limiter = RateLimiter(clock)
    assert over_limit(limiter, "a", "resends", 60, 60, "minute") is None
    refusal = over_limit(limiter, "a", "resends", 30, 60, "minute")
    assert refusal is not None
    assert refusal.retry_after_s == 30
    clock.now += 30
    assert over_limit(limiter, "a", "resends", 30, 60, "minute") is None
    never = over_limit(limiter, "a", "resends", 61, 60, "minute")
    assert never is not None
    assert never.retry_after_s is None
    assert over_limit(limiter, "a", "resends", 10**6, None, "minute") is None


def test_a_request_for_several_accounts_is_counted_all_or_nothing() -> None:
    limiter = RateLimiter(Clock())
    assert over_limit(limiter, "b", "events", 5, 5, "second") is None  # b is spent
    refusal = first_refusal(limiter, {"a": (4, 5), "b": (1, 5)}, "events", "second")
    assert refusal is not None
    assert "'b'" in refusal.message
    # a's four were given back: a full bucket of five is still there.
    assert over_limit(limiter, "a", "events", 5, 5, "second") is None
    assert first_refusal(limiter, {"c": (10**6, None)}, "events", "second") is None


def test_a_changed_limit_starts_a_full_bucket() -> None:
    limiter = RateLimiter(Clock())
    assert over_limit(limiter, "a", "events", 5, 5, "second") is None
    assert over_limit(limiter, "a", "events", 1, 5, "second") is not None
    assert over_limit(limiter, "a", "events", 8, 8, "second") is None


@pytest.mark.parametrize(
    ("slices", "verdict"),
    [
        ([(10, 9), (5, 5), (3, 2)], "failing"),
        ([(10, 9), (0, 0), (3, 3)], None),  # a silent slice: not failing throughout
        ([(10, 9), (5, 5), (4, 2)], "ok"),  # exactly at the threshold is not above it
        ([(10, 9), (5, 5), (0, 0)], None),
        ([(10, 1), (10, 1), (10, 1)], "ok"),
    ],
)
def test_a_rule_fails_only_when_every_slice_is_above_the_threshold(
    slices: list[tuple[int, int]], verdict: str | None
) -> None:
    assert judge(slices, 0.5) == verdict


def test_only_a_change_of_state_is_announced() -> None:
    assert change(None, "failing") == "rule.failing"
    assert change("recovered", "failing") == "rule.failing"
    assert change("failing", "failing") is None
    assert change("failing", "ok") == "rule.recovered"
    assert change(None, "ok") is None
    assert change("failing", None) is None


def test_the_notification_secret_is_sealed_in_the_topic_and_bound_to_its_account() -> None:
    box = SecretBox(new_key_text())
    secret = generate_secret()
    account = Account(
        id="acme", name="ACME", notification_url="https://ops.acme.example/hooks",
        notification_secret=secret,
    )  # fmt: skip
    raw = encode_account(account, box)
    assert secret.encode() not in raw
    assert secret.removeprefix("whsec_").encode() not in raw
    assert decode_account(raw, box) == account
    moved = raw.replace(b'"id":"acme"', b'"id":"other"')
    with pytest.raises(SecretKeyMismatch):
        decode_account(moved, box)
    assert "notification_secret" not in account.public()


def test_notifications_go_to_the_account_url_or_nowhere() -> None:
    secret = generate_secret()
    account = Account(
        id="acme", name="ACME", notification_url="https://ops.acme.example/hooks",
        notification_secret=secret,
    )  # fmt: skip
    target = notification_target(account)
    assert (target.url, target.secret, target.deleted) == (
        "https://ops.acme.example/hooks", secret, False,
    )  # fmt: skip
    assert notification_target(Account.implicit("acme")).deleted
    assert notification_target(None).deleted


def test_announcing_the_same_change_again_keeps_its_webhook_id() -> None:
    rule = Rule(
        id=61856, name="r", event_types=["*"], url="https://x.example/h",
        secret=generate_secret(), account_id="acme",
    )  # fmt: skip
    first = notification_job("rule.failing", rule, "0", now_utc(), {"failure_ratio": 1.0})
    again = notification_job("rule.failing", rule, "0", now_utc(), {"failure_ratio": 0.9})
    later = notification_job("rule.failing", rule, "2", now_utc(), {})
    assert first.dispatch_id == again.dispatch_id != later.dispatch_id
    assert first.rule.rule_id == NOTIFICATIONS_RULE_ID
    assert (first.event.event_type, first.event.account_id) == ("rule.failing", "acme")
    assert first.event.payload["rule_id"] == 61856


def test_an_slo_takes_positive_seconds_within_the_history_kept() -> None:
    account = Account(id="a", name="a", slo={"p95_seconds": 2, "max_undelivered_seconds": 600})
    assert account.slo is not None
    assert account.slo.p95_seconds == 2.0
    for bad in (
        {"p95_seconds": 0, "max_undelivered_seconds": 600},
        {"p95_seconds": 2, "max_undelivered_seconds": 31 * 86400},
        {"p95_seconds": 2},
        {"p95_seconds": 2, "max_undelivered_seconds": 60, "p99_seconds": 5},
    ):
        with pytest.raises(ValueError, match="slo"):
            Account(id="a", name="a", slo=bad)


def test_an_sla_breach_and_its_recovery_are_each_announced_once() -> None:
    assert sla_change(None, True) == "sla.breached"
    assert sla_change("breached", True) is None
    assert sla_change("breached", None) is None  # too little traffic to tell
    assert sla_change("breached", False) == "sla.recovered"
    assert sla_change("recovered", False) is None
    assert sla_change(None, False) is None


def test_an_account_notification_keeps_its_webhook_id_for_the_same_episode() -> None:
    at = now_utc()
    first = account_notification_job("sla.breached", "acct", "0", at, {"breach_ratio": 0.5})
    again = account_notification_job("sla.breached", "acct", "0", at, {"breach_ratio": 0.6})
    later = account_notification_job("sla.breached", "acct", "2", at, {})
    assert first.dispatch_id == again.dispatch_id != later.dispatch_id
    assert first.rule.rule_id == NOTIFICATIONS_RULE_ID
    assert first.event.payload == {"account_id": "acct", "breach_ratio": 0.5}
