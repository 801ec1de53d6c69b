"""One reader of the outcomes topic per process, for the attempts someone waits for.

A test webhook goes the way every webhook goes (resend topic, a worker, its target checks,
the breaker, signing, the outcomes topic, the history), so what it reports is what a real
dispatch would meet; only its answer is awaited here. The reader runs only while someone
waits: it takes the topic's partitions at their end when the first waiter arrives (before
that waiter's job is sent) and lets them go when the last one is answered or gives up.
"""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any

from kafka import TopicPartition

from analytics.control.topic_tail import TopicTail
from analytics.errors import KafkaRefused
from disparo.errors import InvalidMessage
from disparo.outcome_batch import is_batch, outcome_of
from disparo.schemas import AttemptOutcome, DispatchJob, parse_outcome
from disparo.settings import KernelSettings

MAX_WAITERS = 100  # test webhooks awaited at once per process


class OutcomeWatch(TopicTail):
    """Answers `expect(job)` futures with the outcome of the job's attempt."""

    def __init__(self, settings: KernelSettings, topic: str) -> None:
        super().__init__(settings, topic, "outcome-watch")
        self._waiters: dict[str, Future[AttemptOutcome]] = {}  # attempt id -> its answer
        self._keys: dict[bytes, int] = {}  # dispatch ids awaited (outcomes' record keys)

    def listening(self) -> bool:
        return bool(self._waiters)

    def expect(self, job: DispatchJob) -> Future[AttemptOutcome]:
        """A future of the job's outcome; returns once an outcome written after now will be
        read (send the job after this). KafkaRefused when the topic cannot be read."""
        answer: Future[AttemptOutcome] = Future()
        key = job.dispatch_id.encode()
        with self._cond:
            if len(self._waiters) >= MAX_WAITERS:
                raise KafkaRefused(f"{MAX_WAITERS} test webhooks are awaited already; retry")
            self._waiters[job.attempt_id] = answer
            self._keys[key] = self._keys.get(key, 0) + 1
            self._cond.notify_all()
        try:
            self.wait_reading()
        except KafkaRefused:
            self.forget(job)
            raise
        return answer

    def forget(self, job: DispatchJob) -> None:
        """Stop waiting for the job's outcome (answered, or given up)."""
        key = job.dispatch_id.encode()
        with self._cond:
            self._waiters.pop(job.attempt_id, None)
            if self._keys.get(key, 0) <= 1:
                self._keys.pop(key, None)
            else:
                self._keys[key] -= 1

    def take(self, polled: dict[TopicPartition, list[Any]]) -> None:
        self._deliver(polled)

    def _deliver(self, polled: dict[TopicPartition, list[object]]) -> None:
        for records in polled.values():
            for record in records:
                value = getattr(record, "value", None)
                if is_batch(getattr(record, "headers", None)):
                    for outcome in self._waited_in(value):
                        self._answer(outcome)
                elif getattr(record, "key", None) in self._keys:
                    single = _outcome(value)
                    if single is not None:
                        self._answer(single)

    def _waited_in(self, value: object) -> list[AttemptOutcome]:
        """The awaited attempts a batch holds, found by their ids before anything is parsed."""
        if not isinstance(value, bytes):
            return []
        with self._cond:
            waited = list(self._waiters)
        found = []
        for attempt_id in waited:
            at = value.find(b'"attempt_id":"' + attempt_id.encode() + b'"')
            if at >= 0:
                line = value[value.rfind(b"\n", 0, at) + 1 : value.find(b"\n", at) + 1]
                try:
                    found.append(outcome_of(line))
                except InvalidMessage:
                    continue  # the sink dead-letters it; not the one waited for
        return found

    def _answer(self, outcome: AttemptOutcome) -> None:
        with self._cond:
            waiter = self._waiters.get(outcome.attempt_id)
        if waiter is not None and not waiter.done():
            waiter.set_result(outcome)


def _outcome(raw: object) -> AttemptOutcome | None:
    try:
        return parse_outcome(raw if isinstance(raw, bytes) else None)
    except InvalidMessage:
        return None  # the sink dead-letters it; not the one waited for
