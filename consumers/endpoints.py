"""Per-endpoint protection: a concurrency cap and a circuit breaker for each endpoint host."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from consumers import classify, metrics

CLOSED, HALF_OPEN, OPEN = "closed", "half_open", "open"
_STATE_VALUE = {CLOSED: 0, HALF_OPEN: 1, OPEN: 2}
# Failures that say the endpoint itself is unwell; a 4xx means it is up and answering.
UNHEALTHY = frozenset(
    {classify.HTTP_5XX, classify.TIMEOUT, classify.CONNECTION, classify.DNS, classify.TLS}
)


def endpoint_of(url: str) -> str:
    """The host:port a URL's requests go to: the unit of protection."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{(parts.hostname or '').lower()}:{port}"


@dataclass
class Breaker:
    """Opens after `threshold` unhealthy answers in a row; after `open_s` lets one probe by."""

    threshold: int = 5
    open_s: float = 30.0
    state: str = CLOSED
    failures: int = 0
    opened_at: float = 0.0
    probing: bool = False

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

    def record(self, healthy: bool, now: float) -> None:
        """Account for one answer (or its absence)."""
        self.probing = False
        if healthy:
            self.state, self.failures = CLOSED, 0
            return
        self.failures += 1
        if self.state == HALF_OPEN or self.failures >= self.threshold:
            self.state, self.opened_at = OPEN, now

    def retry_in(self, now: float) -> float:
        """Seconds until the next probe may go."""
        return max(0.0, self.open_s - (now - self.opened_at))


@dataclass
class EndpointGuard:
    """The concurrency slots and breakers of every endpoint this worker talks to."""

    per_endpoint: int = 64
    threshold: int = 5
    open_s: float = 30.0
    clock: Callable[[], float] = time.monotonic
    _slots: dict[str, asyncio.Semaphore] = field(default_factory=dict)
    _breakers: dict[str, Breaker] = field(default_factory=dict)

    def slot(self, endpoint: str) -> asyncio.Semaphore:
        """The semaphore capping concurrent POSTs to one endpoint."""
        if endpoint not in self._slots:
            self._slots[endpoint] = asyncio.Semaphore(self.per_endpoint)
        return self._slots[endpoint]

    def breaker(self, endpoint: str) -> Breaker:
        if endpoint not in self._breakers:
            self._breakers[endpoint] = Breaker(self.threshold, self.open_s)
        return self._breakers[endpoint]

    def admit(self, endpoint: str) -> float | None:
        """None when a delivery may go now; otherwise the seconds until the next probe."""
        breaker = self.breaker(endpoint)
        now = self.clock()
        if breaker.allow(now):
            return None
        return breaker.retry_in(now)

    def record(self, endpoint: str, reason: str) -> None:
        """Account for an attempt's reason (success or failure) and export the state."""
        breaker = self.breaker(endpoint)
        breaker.record(reason not in UNHEALTHY, self.clock())
        metrics.CIRCUIT_STATE.labels(endpoint).set(_STATE_VALUE[breaker.state])
