"""When a failed attempt is tried again: the retry schedule as data, decisions as pure functions."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from consumers import classify
from disparo.retry_tiers import Tier

NEVER_RETRIED = frozenset(
    {
        classify.TARGET_REFUSED,
        classify.TARGET_CHANGED,
        classify.INVALID_URL,
        classify.INVALID_REQUEST,
        classify.RESPONSE_TOO_LARGE,
    }
)


@dataclass(frozen=True)
class Retry:
    """A decision to try again: through which tier, after how long."""

    tier: Tier
    delay_s: float


@dataclass(frozen=True)
class RetryPolicy:
    """Which failures are retried, through which tier, with how much jitter."""

    tiers: tuple[Tier, ...]
    retried_4xx: frozenset[int] = field(default_factory=lambda: frozenset({408, 429}))
    jitter: float = 0.2

    def retryable(self, reason: str, http_status: int | None) -> bool:
        """False for successes and for failures another try cannot fix."""
        if reason == classify.SUCCESS or reason in NEVER_RETRIED:
            return False
        if reason == classify.HTTP_4XX:
            return http_status in self.retried_4xx
        return True

    def tier_for(self, attempt: int) -> Tier:
        """The tier that carries the retry after a failed `attempt` (1-based)."""
        return self.tiers[min(attempt, len(self.tiers)) - 1]

    def next_retry(
        self,
        attempt: int,
        max_attempts: int,
        reason: str,
        http_status: int | None,
        retry_after_s: float | None,
        rand: float,
    ) -> Retry | None:
        """The retry after a failed attempt, or None when the dispatch is final.

        `rand` in [0, 1) spreads delays by +/- `jitter` so a recovering endpoint is not hit
        by every retry at once. A `Retry-After` from a 429 or 503 is honoured, clamped to
        between the tier's delay and twice it.
        """
        if attempt >= max_attempts or not self.retryable(reason, http_status):
            return None
        tier = self.tier_for(attempt)
        delay = tier.delay_s * (1 + self.jitter * (2 * rand - 1))
        if retry_after_s is not None and http_status in (429, 503):
            delay = min(max(retry_after_s, tier.delay_s), 2 * tier.delay_s)
        return Retry(tier, delay)


# A receiver may ask for anything; the retry policy clamps to its tiers anyway.
MAX_RETRY_AFTER_S = 7 * 24 * 3600.0


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds a `Retry-After` header asks for (delta-seconds or HTTP-date), None if absent."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():  # str.isdigit() is true for '²' too
        return min(float(value), MAX_RETRY_AFTER_S)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # '-0000' means UTC with no zone information (RFC 5322)
        when = when.replace(tzinfo=UTC)
    return min(max(0.0, (when - now).total_seconds()), MAX_RETRY_AFTER_S)
