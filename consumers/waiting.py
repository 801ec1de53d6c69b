"""Jobs waiting for their endpoint: counted per endpoint, bounded for slow ones.

Up to `backlog` jobs waiting for one endpoint do not count toward the in-flight limit that
pauses every partition, so endpoints that hang cannot stop the others while the worker finds
out that they hang. A *slow* endpoint (every slot held, none given back lately) has at most
`backlog` waiting, and the worker defers the rest to a retry tier; further jobs waiting for a
fast endpoint count, so a burst to it pauses fetching instead of being deferred.
"""

from __future__ import annotations

from dataclasses import dataclass

from consumers.endpoints import EndpointGuard


@dataclass
class Ticket:
    """One job's place among those waiting for its endpoint, until it holds a slot."""

    endpoint: str
    done: bool = False


class WaitingJobs:
    """How many jobs wait for each endpoint."""

    def __init__(self, guard: EndpointGuard, backlog: int) -> None:
        self.guard = guard
        self.backlog = backlog
        self._count: dict[str, int] = {}

    def full(self, endpoint: str) -> bool:
        """Whether `endpoint` is slow and already has its whole backlog waiting."""
        return self._count.get(endpoint, 0) >= self.backlog and self.guard.slow(endpoint)

    def join(self, endpoint: str) -> Ticket:
        """A new job starts waiting for `endpoint`."""
        self._count[endpoint] = self._count.get(endpoint, 0) + 1
        return Ticket(endpoint)

    def leave(self, ticket: Ticket) -> bool:
        """The job holds a slot now, or is done; False if it had left already."""
        if ticket.done:
            return False
        ticket.done = True
        self._count[ticket.endpoint] -= 1
        if not self._count[ticket.endpoint]:
            del self._count[ticket.endpoint]
        return True

    def stuck(self) -> int:
        """Jobs that do not count toward the in-flight limit: all those waiting for a slow
        endpoint, and up to `backlog` waiting for any other."""
        return sum(
            n if self.guard.slow(endpoint) else min(n, self.backlog)
            for endpoint, n in self._count.items()
        )
