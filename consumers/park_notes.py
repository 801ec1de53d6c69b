"""What this worker tells the dispatchers about the endpoints it is deferring jobs for."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from disparo.parking import ParkedEndpoint, ParkReason
from disparo.schemas import now_utc


@dataclass(frozen=True)
class Note:
    """One `parked-endpoints` record to write: the endpoint's park, or a tombstone (None)."""

    endpoint: str
    value: bytes | None


class ParkNotes:
    """Parks an endpoint when its jobs start being deferred, again only once half of the park
    has passed, and unparks it after its next healthy answer. Pure: the worker writes them."""

    def __init__(self, clock: Callable[[], datetime] = now_utc) -> None:
        self.clock = clock
        self.parked: dict[str, datetime] = {}  # the park this worker last wrote, per endpoint

    def deferred(self, endpoint: str, wait_s: float, why: ParkReason) -> Note | None:
        """A job for `endpoint` was deferred for `wait_s`: the note to write, unless written
        lately."""
        now = self.clock()
        until = self.parked.get(endpoint)
        if until is not None and until - now >= timedelta(seconds=wait_s / 2):
            return None
        until = now + timedelta(seconds=wait_s)
        self.parked[endpoint] = until
        park = ParkedEndpoint(endpoint=endpoint, until=until, reason=why)
        return Note(endpoint, park.model_dump_json().encode())

    def answered(self, endpoint: str) -> Note | None:
        """`endpoint` answered healthily: a tombstone if this worker parked it."""
        if self.parked.pop(endpoint, None) is None:
            return None
        return Note(endpoint, None)
