"""The endpoint hook: breakers before and after each attempt, parked-endpoint notes.

A job for an endpoint whose circuit is open is deferred (manual resends too: the breaker
guards them all); every attempt's answer feeds its endpoint's breaker, a 2xx slower than
half the rule's timeout counting as unhealthy; the dispatchers hear (parked-endpoints) when
this worker starts deferring an endpoint's jobs and when the endpoint answers well again.
"""

from __future__ import annotations

from consumers import classify
from consumers.attempt import Attempt
from consumers.endpoints import EndpointGuard
from consumers.hooks import Decision, Defer, Host, JobHook, Place
from consumers.park_notes import Note, ParkNotes
from disparo.parking import DeferReason
from disparo.schemas import DispatchJob


class EndpointWatch(JobHook):
    """Breakers and park notes of the endpoints one worker talks to."""

    def __init__(self, guard: EndpointGuard, notes: ParkNotes | None = None) -> None:
        self.guard = guard
        self.notes = notes or ParkNotes()

    def before_attempt(self, host: Host, job: DispatchJob, place: Place) -> Decision:
        if job.test:  # a person checking the endpoint waits for this answer: it is the probe
            return None
        wait_s = self.guard.admit(place.endpoint)
        return None if wait_s is None else Defer(wait_s, classify.CIRCUIT_OPEN)

    def after_attempt(self, host: Host, job: DispatchJob, attempt: Attempt, endpoint: str) -> None:
        slow = attempt.duration_ms > job.target.timeout_s * 500  # over half its timeout
        if self.guard.record(endpoint, attempt.reason, slow):
            _tell(host, self.notes.answered(endpoint))

    def on_defer(
        self, host: Host, job: DispatchJob, endpoint: str, wait_s: float, why: DeferReason
    ) -> None:
        if why != classify.RATE_LIMITED:  # the rule's pace, not the endpoint: nothing to park
            _tell(host, self.notes.deferred(endpoint, wait_s, why))


def _tell(host: Host, note: Note | None) -> None:
    if note is not None:
        host.tell(note.endpoint, note.value)
