"""Per-account rate limits as token buckets: pure, with the clock passed in."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class Bucket:
    """Holds up to `capacity` tokens, refilled at `rate` per second."""

    rate: float
    capacity: float
    tokens: float
    at: float

    def take(self, n: int, now: float) -> float:
        """Take `n` tokens if there are enough and return 0; else the seconds until there are.

        Nothing is taken from a refused request, so a client retrying after the answer is
        served; `n` over the capacity can never pass (the caller refuses it otherwise).
        """
        self.tokens = min(self.capacity, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if n <= self.tokens:
            self.tokens -= n
            return 0.0
        return (n - self.tokens) / self.rate


class RateLimiter:
    """Buckets per (account, limit); a bucket is made anew when its account's limit changes."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._buckets: dict[tuple[str, str], tuple[int, float, Bucket]] = {}
        self._lock = threading.Lock()

    def wait_s(self, account: str, kind: str, n: int, limit: int, per_s: float) -> int:
        """Seconds to wait before `n` more fit in `limit` per `per_s` seconds (0: taken now).

        Whole seconds, rounded up, as `Retry-After` gives them.
        """
        now = self.clock()
        with self._lock:
            found = self._buckets.get((account, kind))
            if found is None or found[:2] != (limit, per_s):
                bucket = Bucket(limit / per_s, float(limit), float(limit), now)
                self._buckets[(account, kind)] = (limit, per_s, bucket)
            else:
                bucket = found[2]
            return math.ceil(bucket.take(n, now))


@dataclass(frozen=True)
class Refusal:
    """Why a request is over an account's limit; `retry_after_s` None when it never fits."""

    message: str
    retry_after_s: int | None


def over_limit(
    limiter: RateLimiter, account: str, what: str, n: int, limit: int | None, per: str
) -> Refusal | None:
    """Take `n` of `what` from the account's limit of `limit` per `per` ("second"/"minute")."""
    if limit is None:
        return None
    per_s = 60.0 if per == "minute" else 1.0
    if n > limit:
        return Refusal(
            f"{n} {what} at once is over account {account!r}'s limit of {limit} per {per}; "
            f"send at most {limit} per request",
            None,
        )
    wait = limiter.wait_s(account, what, n, limit, per_s)
    if wait == 0:
        return None
    return Refusal(
        f"account {account!r} is over its limit of {limit} {what} per {per}; "
        f"nothing was accepted, try again in {wait} s",
        wait,
    )
