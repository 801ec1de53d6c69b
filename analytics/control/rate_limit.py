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
        served. A full bucket lends what `n` needs beyond its capacity (a replica's share
        of a limit can be smaller than one request): the debt is paid back before the next
        request passes, so the rate holds over time.
        """
        self.tokens = min(self.capacity, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if n <= self.tokens or self.tokens >= self.capacity:
            self.tokens -= n
            return 0.0
        return (min(n, self.capacity) - self.tokens) / self.rate


class RateLimiter:
    """Buckets per (account, limit); a bucket is made anew when its account's limit changes.

    `share()` is how many live replicas enforce the same limits (each takes its part).
    """

    def __init__(
        self, clock: Callable[[], float] = time.monotonic, share: Callable[[], int] = lambda: 1
    ) -> None:
        self.clock = clock
        self.share = share
        self._buckets: dict[tuple[str, str], tuple[float, float, Bucket]] = {}
        self._lock = threading.Lock()

    def wait_s(self, account: str, kind: str, n: int, limit: int, per_s: float) -> int:
        """Seconds to wait before `n` more fit in `limit` per `per_s` seconds (0: taken now).

        Whole seconds, rounded up, as `Retry-After` gives them.
        """
        now = self.clock()
        part = limit / max(1, self.share())
        with self._lock:
            found = self._buckets.get((account, kind))
            if found is None or found[:2] != (part, per_s):
                bucket = Bucket(part / per_s, part, part, now)
                self._buckets[(account, kind)] = (part, per_s, bucket)
            else:
                bucket = found[2]
            return math.ceil(bucket.take(n, now))

    def give_back(self, account: str, kind: str, n: int) -> None:
        """Return `n` taken tokens: their request was refused for another account's limit."""
        with self._lock:
            found = self._buckets.get((account, kind))
            if found is not None:
                bucket = found[2]
                bucket.tokens = min(bucket.capacity, bucket.tokens + n)


@dataclass(frozen=True)
class Refusal:
    """Why a request is over an account's limit; `retry_after_s` None when it never fits."""

    message: str
    retry_after_s: int | None


def first_refusal(
    limiter: RateLimiter, wanted: dict[str, tuple[int, int | None]], what: str, per: str
) -> Refusal | None:
    """Take each account's (count, limit) of `what`; all or nothing: on the first refusal
    the accounts already counted get their tokens back."""
    taken: list[tuple[str, int]] = []
    for account, (n, limit) in wanted.items():
        refusal = over_limit(limiter, account, what, n, limit, per)
        if refusal is not None:
            for done, m in taken:
                limiter.give_back(done, what, m)
            return refusal
        if limit is not None:
            taken.append((account, n))
    return None


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
