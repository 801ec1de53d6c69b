"""Per-job hooks: the concerns the worker calls at fixed points of a job's life.

dramatiq's middleware is the model: the worker owns the job's path (poll, slots, POST,
settle, commit) and, at each fixed point, calls every hook in order; a hook holds its own
state and reaches back into the worker only through the `Host` it is handed at each call,
never through callbacks wired into it. The points:

- `before_attempt`: may stop the job (`Taken`: the hook ended or parked it itself) or have
  the worker defer it to a retry tier (`Defer`); the first hook that answers decides. A
  `Wait` is not an answer: the job waits that long, then the same hook is asked again.
- `after_attempt`: a POST was made (or refused before the network); its record as made.
- `on_defer`: the worker parked the job in a retry tier without an attempt.
- `on_settled`: the attempt's record is final (final flag, retry tier) and kept for the batch.
- `on_dropped`: the job ended without a record (dead-lettered after crashing its handling).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from consumers.attempt import Attempt
from disparo.parking import DeferReason
from disparo.schemas import DispatchJob


@dataclass(frozen=True)
class Place:
    """Where a job came from: its partition, its record, and whether its offset is tracked
    (a job read back for an order lane has none of its own)."""

    tp: Any
    record: Any
    tracked: bool
    endpoint: str


@dataclass(frozen=True)
class Taken:
    """A hook took the job: it recorded what happened, or parked it where it belongs."""


@dataclass(frozen=True)
class Wait:
    """The job waits `wait_s` in memory (its rule's turn), then the next hooks are asked."""

    wait_s: float


@dataclass(frozen=True)
class Defer:
    """The job must wait `wait_s` (parked in a retry tier, no attempt used)."""

    wait_s: float
    why: DeferReason


Decision = Taken | Defer | Wait | None


class Host(Protocol):
    """What a hook may ask of the worker that calls it."""

    def record(self, job: DispatchJob, attempt: Attempt, partition: int) -> None:
        """Keep a job's record for the next batch (held, superseded: no attempt made)."""

    def start(self, tp: Any, record: Any, job: DispatchJob, tracked: bool) -> None:
        """Start a job read back from its record (an order lane's next dispatch)."""

    def tell(self, endpoint: str, value: bytes | None) -> None:
        """Write a parked-endpoints note (advice to the dispatchers)."""


class JobHook:
    """A hook that does nothing at every point; concerns override the points they need."""

    def before_attempt(self, host: Host, job: DispatchJob, place: Place) -> Decision:
        return None

    def after_attempt(self, host: Host, job: DispatchJob, attempt: Attempt, endpoint: str) -> None:
        return None

    def on_defer(
        self, host: Host, job: DispatchJob, endpoint: str, wait_s: float, why: DeferReason
    ) -> None:
        return None

    def on_settled(self, host: Host, job: DispatchJob, attempt: Attempt, partition: int) -> None:
        return None

    def on_dropped(self, host: Host, job: DispatchJob) -> None:
        return None
