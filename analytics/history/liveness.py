"""When the analytics process needs a restart: its sink stopped turning, or never got work."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Protocol

from kafka import TopicPartition

from disparo.stacks import thread_stacks

log = logging.getLogger(__name__)


class SinkState(Protocol):
    assigned: frozenset[TopicPartition]

    def stalled_for(self) -> float: ...


class Backlog(Protocol):
    def total(self) -> int | None: ...


def sink_problem(
    sink: SinkState,
    thread: threading.Thread,
    lag: Backlog,
    limit_s: float,
    what: str = "outcomes",
) -> Callable[[], str | None]:
    """Why the sink needs a restart, if it does; the first time, its stacks go to the log."""
    reported = threading.Event()
    idle_since: list[float] = []  # when the sink was last seen with a backlog and no partition

    def unassigned_for() -> float:
        backlog = lag.total()
        if sink.assigned or not backlog:
            idle_since.clear()
            return 0.0
        if not idle_since:
            idle_since.append(time.monotonic())
        return time.monotonic() - idle_since[0]

    def problem() -> str | None:
        if not thread.is_alive():
            return None
        stalled, idle = sink.stalled_for(), unassigned_for()
        if stalled > limit_s:
            why = f"the {what} sink made no progress for {stalled:.0f} s"
        elif idle > limit_s:
            why = (
                f"the {what} sink has held no partition for {idle:.0f} s "
                f"while {lag.total()} {what} wait"
            )
        else:
            return None
        if not reported.is_set():
            reported.set()
            log.error("%s; thread stacks follow\n%s", why, thread_stacks())
        return why

    return problem
