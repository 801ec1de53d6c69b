"""Per-endpoint protection: concurrency caps and a circuit breaker for each endpoint.

An endpoint is one account's host:port (`disparo.parking.endpoint_key`): its slots, breaker
and resend pace are its own. Above them, a host-wide cap bounds what all accounts send to one
host:port, and an account share bounds what one account holds of the worker's slots.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from consumers import classify, metrics

CLOSED, HALF_OPEN, OPEN = "closed", "half_open", "open"
# An endpoint holding every slot is slow once none came back for this long, or for
# SLOW_FACTOR times its typical answer time if that is longer: short, because until then
# its waiting jobs beyond its backlog count toward the in-flight limit that pauses every
# partition, and none is deferred.
SLOW_AFTER_S = 0.5
SLOW_FACTOR = 4.0
# ...and only once the worker went round its poll loop this many times since the last answer
# came back: between two turns its event loop reads every answer that arrived. A worker that
# was itself held up (the machine busy, a long step) has unread answers, not a slow endpoint:
# counting wall time alone, such a stall of 0.5 s deferred a fast endpoint's backlog by 5 s
# (`make bench`, issue 29).
SLOW_AFTER_TURNS = 2
# Failures that say the endpoint itself is unwell; a 4xx means it is up and answering.
UNHEALTHY = frozenset(
    {
        classify.HTTP_5XX,
        classify.TIMEOUT,
        classify.CONNECTION,
        classify.DNS,
        classify.TLS,
        classify.INVALID_RESPONSE,
    }
)


def health_of(reason: str, slow: bool = False) -> bool | None:
    """What an attempt's reason says of its endpoint: healthy, unhealthy, or nothing; an
    answer slower than half its timeout is unhealthy (such answers hold slots for long)."""
    if reason == classify.SUCCESS:
        return not slow
    return False if reason in UNHEALTHY else None


@dataclass
class Breaker:
    """Opens after `threshold` unhealthy answers within `window_s` with no success between.

    Answers that say nothing about the endpoint's health (a fast 4xx, a refused target)
    neither count nor reset: a stream of 4xx mixed into timeouts still opens the circuit.
    After `open_s` one probe goes by; its answer closes or re-opens the circuit.
    """

    threshold: int = 5
    open_s: float = 30.0
    window_s: float = 60.0
    state: str = CLOSED
    opened_at: float = 0.0
    probing: bool = False
    failures: deque[float] = field(default_factory=deque)

    def allow(self, now: float) -> bool:
        """Whether a delivery may go out now (a half-open breaker lets exactly one through)."""
        if self.state == OPEN and now - self.opened_at >= self.open_s:
            self.state = HALF_OPEN
        if self.state == CLOSED:
            return True
        if self.state == HALF_OPEN and not self.probing:
            self.probing = True
            return True
        return False

    def record(self, healthy: bool | None, now: float) -> None:
        """Account for one answer: healthy, unhealthy, or None when it tells nothing."""
        self.probing = False
        if healthy is None:
            if self.state == HALF_OPEN:  # the probe was answered: the endpoint is up
                self.state = CLOSED
            return
        if healthy:
            self.state = CLOSED
            self.failures.clear()
            return
        self.failures.append(now)
        while self.failures and now - self.failures[0] > self.window_s:
            self.failures.popleft()
        if self.state == HALF_OPEN or len(self.failures) >= self.threshold:
            self.state, self.opened_at = OPEN, now
            self.failures.clear()

    def retry_in(self, now: float) -> float:
        """Seconds until the next probe may go."""
        return max(0.0, self.open_s - (now - self.opened_at))


@dataclass
class RateLimit:
    """A token bucket: `rate` per second, bursts up to `rate` (one second's worth)."""

    rate: float
    tokens: float = -1.0
    at: float = 0.0

    def take(self, now: float) -> float:
        """0 if a token was taken now; otherwise the seconds until one is due."""
        if self.tokens < 0:
            self.tokens, self.at = self.rate, now
        self.tokens = min(self.rate, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate


@dataclass
class EndpointGuard:
    """The concurrency slots and breakers of every endpoint this worker talks to."""

    per_endpoint: int = 64
    threshold: int = 5
    open_s: float = 30.0
    resend_rate: float = 20.0
    clock: Callable[[], float] = time.monotonic
    per_host: int = 128
    per_account: int = 1_000_000
    _slots: dict[str, asyncio.Semaphore] = field(default_factory=dict)
    _hosts: dict[str, asyncio.Semaphore] = field(default_factory=dict)
    _accounts: dict[str, asyncio.Semaphore] = field(default_factory=dict)
    _breakers: dict[str, Breaker] = field(default_factory=dict)
    _resends: dict[str, RateLimit] = field(default_factory=dict)
    _active: dict[str, int] = field(default_factory=dict)
    _last_done: dict[str, float] = field(default_factory=dict)
    _typical_s: dict[str, float] = field(default_factory=dict)
    _turns: int = 0
    _done_turn: dict[str, int] = field(default_factory=dict)

    def turn(self) -> None:
        """The worker went round its poll loop once (its event loop ran in between)."""
        self._turns += 1

    def slot(self, endpoint: str) -> asyncio.Semaphore:
        """The semaphore capping concurrent POSTs to one endpoint."""
        if endpoint not in self._slots:
            self._slots[endpoint] = asyncio.Semaphore(self.per_endpoint)
        return self._slots[endpoint]

    def host_slot(self, host: str) -> asyncio.Semaphore:
        """The semaphore capping concurrent POSTs to one host:port, every account's."""
        if host not in self._hosts:
            self._hosts[host] = asyncio.Semaphore(self.per_host)
        return self._hosts[host]

    def account_slot(self, account_id: str) -> asyncio.Semaphore:
        """The semaphore capping one account's share of the worker's POSTs."""
        if account_id not in self._accounts:
            self._accounts[account_id] = asyncio.Semaphore(self.per_account)
        return self._accounts[account_id]

    def circuits(self, state: str) -> int:
        """How many endpoints' circuits are in `state` (a gauge: no host names in labels)."""
        return sum(1 for b in self._breakers.values() if b.state == state)

    def breaker(self, endpoint: str) -> Breaker:
        if endpoint not in self._breakers:
            self._breakers[endpoint] = Breaker(self.threshold, self.open_s)
        return self._breakers[endpoint]

    def started(self, endpoint: str) -> float:
        """A POST to `endpoint` took one of its slots; returns when, for `finished`."""
        now = self.clock()
        active = self._active.get(endpoint, 0)
        self._active[endpoint] = active + 1
        if not active:
            # Quiet counts from when it got work again: an endpoint idle for a minute whose
            # slots fill at once is not slow, whatever its last answer's age (that reading
            # deferred a burst to a fast endpoint after a pause, `make bench`, issue 29).
            self._last_done[endpoint] = now
            self._done_turn[endpoint] = self._turns
        return now

    def finished(self, endpoint: str, since: float) -> None:
        """A POST to `endpoint`, started at `since`, gave its slot back."""
        now = self.clock()
        self._active[endpoint] -= 1
        self._last_done[endpoint] = now
        self._done_turn[endpoint] = self._turns
        typical = self._typical_s.get(endpoint, now - since)
        self._typical_s[endpoint] = 0.8 * typical + 0.2 * (now - since)

    def slow(self, endpoint: str) -> bool:
        """Every slot taken and none given back lately: its waiting jobs will wait.

        A fast endpoint with a burst of jobs is not slow: its slots turn over all the time;
        one known to answer slowly gets SLOW_FACTOR times its typical answer time. Either way
        the worker must have gone round its loop SLOW_AFTER_TURNS times without an answer.
        """
        if self._active.get(endpoint, 0) < self.per_endpoint:
            return False
        if self._turns - self._done_turn.get(endpoint, self._turns) < SLOW_AFTER_TURNS:
            return False
        quiet_s = max(SLOW_AFTER_S, SLOW_FACTOR * self._typical_s.get(endpoint, 0.0))
        return self.clock() - self._last_done.get(endpoint, self.clock()) > quiet_s

    def resend_wait(self, endpoint: str) -> float:
        """0 if a manual resend may go to `endpoint` now; otherwise seconds to wait."""
        if endpoint not in self._resends:
            self._resends[endpoint] = RateLimit(self.resend_rate)
        return self._resends[endpoint].take(self.clock())

    def admit(self, endpoint: str) -> float | None:
        """None when a delivery may go now; otherwise the seconds until the next probe."""
        breaker = self.breaker(endpoint)
        now = self.clock()
        if breaker.allow(now):
            return None
        return breaker.retry_in(now)

    def record(self, endpoint: str, reason: str, slow: bool = False) -> bool | None:
        """Account for an attempt's reason (and slowness); what it said of the health."""
        breaker = self.breaker(endpoint)
        healthy = health_of(reason, slow)
        breaker.record(healthy, self.clock())
        return healthy

    def export(self) -> None:
        """Publish the number of circuits in each state as `disparo_circuits{state}`."""
        for state in (CLOSED, HALF_OPEN, OPEN):
            metrics.CIRCUITS.labels(state).set_function(functools.partial(self.circuits, state))
