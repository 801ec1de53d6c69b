from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from consumers import classify
from consumers.retry_policy import MAX_RETRY_AFTER_S, RetryPolicy, parse_retry_after
from disparo.retry_tiers import Tier, parse_schedule

TIERS = parse_schedule("5s,1m,10m,1h,6h")
POLICY = RetryPolicy(TIERS)


def test_schedule_parses_units_and_keeps_order() -> None:
    assert [(t.name, t.delay_s) for t in TIERS] == [
        ("5s", 5),
        ("1m", 60),
        ("10m", 600),
        ("1h", 3600),
        ("6h", 21600),
    ]
    assert parse_schedule("1d")[0] == Tier("1d", 86400)


@pytest.mark.parametrize(
    ("text", "needle"),
    [("5x", "'5x' is not a delay"), ("", "is not a delay"), ("5s,5s", "once"), ("1m,,1h", "''")],
)
def test_bad_schedules_name_the_bad_part(text: str, needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        parse_schedule(text)


def test_each_failed_attempt_moves_to_the_next_tier_and_the_last_tier_repeats() -> None:
    names = [POLICY.tier_for(a).name for a in range(1, 9)]
    assert names == ["5s", "1m", "10m", "1h", "6h", "6h", "6h", "6h"]


def test_no_retry_after_the_last_allowed_attempt() -> None:
    assert POLICY.next_retry(3, 3, classify.HTTP_5XX, 503, None, 0.5) is None
    retry = POLICY.next_retry(2, 3, classify.HTTP_5XX, 503, None, 0.5)
    assert retry is not None
    assert retry.tier.name == "1m"


@pytest.mark.parametrize(
    ("reason", "status", "retried"),
    [
        (classify.HTTP_5XX, 500, True),
        (classify.TIMEOUT, None, True),
        (classify.CONNECTION, None, True),
        (classify.DNS, None, True),
        (classify.TLS, None, True),
        (classify.HTTP_4XX, 408, True),
        (classify.HTTP_4XX, 429, True),
        (classify.HTTP_4XX, 400, False),
        (classify.HTTP_4XX, 410, False),
        (classify.HTTP_4XX, 404, False),
        (classify.TARGET_REFUSED, None, False),
        (classify.INVALID_URL, None, False),
        (classify.SUCCESS, 200, False),
    ],
)
def test_which_failures_are_retried(reason: str, status: int | None, retried: bool) -> None:
    assert POLICY.retryable(reason, status) is retried


def test_retried_4xx_statuses_are_configurable() -> None:
    policy = RetryPolicy(TIERS, retried_4xx=frozenset({404}))
    assert policy.retryable(classify.HTTP_4XX, 404)
    assert not policy.retryable(classify.HTTP_4XX, 429)


def test_jitter_spreads_delays_within_the_band() -> None:
    low = POLICY.next_retry(1, 5, classify.HTTP_5XX, 500, None, 0.0)
    high = POLICY.next_retry(1, 5, classify.HTTP_5XX, 500, None, 0.999999)
    mid = POLICY.next_retry(1, 5, classify.HTTP_5XX, 500, None, 0.5)
    assert low is not None and high is not None and mid is not None  # noqa: PT018
    assert low.delay_s == pytest.approx(4.0)
    assert high.delay_s == pytest.approx(6.0, rel=1e-5)
    assert mid.delay_s == pytest.approx(5.0)


@pytest.mark.parametrize(
    ("retry_after", "status", "expected"),
    [(30.0, 503, 10.0), (7.0, 429, 7.0), (1.0, 503, 5.0), (7.0, 500, None)],
)
def test_retry_after_is_clamped_between_the_delay_and_twice_it(
    retry_after: float, status: int, expected: float | None
) -> None:
    reason = classify.reason_for_status(status)
    retry = POLICY.next_retry(1, 5, reason, status, retry_after, 0.5)
    assert retry is not None
    assert retry.delay_s == (expected if expected is not None else 5.0)


def test_retry_after_header_forms() -> None:
    now = datetime(2026, 11, 28, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("120", now) == 120.0
    assert parse_retry_after("Sat, 28 Nov 2026 12:01:00 GMT", now) == 60.0
    assert parse_retry_after("Sat, 28 Nov 2026 11:00:00 GMT", now) == 0.0
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after(None, now) is None


def test_hostile_retry_after_values_parse_without_raising() -> None:
    now = datetime(2026, 11, 28, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 -0000", now) == 0.0  # naive date
    assert parse_retry_after("Sat, 28 Nov 2026 12:00:30 -0000", now) == 30.0
    assert parse_retry_after("²", now) is None  # a digit to str.isdigit(), not to float()
    assert parse_retry_after("9" * 5000, now) == MAX_RETRY_AFTER_S


@given(st.text(max_size=80))
def test_parse_retry_after_never_raises_and_stays_in_bounds(value: str) -> None:
    now = datetime(2026, 11, 28, 12, 0, 0, tzinfo=UTC)
    seconds = parse_retry_after(value, now)
    assert seconds is None or 0.0 <= seconds <= MAX_RETRY_AFTER_S
