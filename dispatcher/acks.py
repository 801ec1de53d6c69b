"""Acks for batches of order events: an event is acked only once Kafka has all it produced.

The dispatcher takes events in batches without faust's automatic acks, sends their jobs
(and dead letters) straight to the producer, and hands the batch here with the sends'
futures. The events are acked, and so become committable, only when every future has
succeeded; if one fails, none of the batch is acked and the process stops, so the events
are routed again by the next owner (at least once). faust commits up to the first offset
not acked in each partition, so a later batch acked first never commits past a failed one.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import signal
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger(__name__)


def stop_process() -> None:
    """Stop this dispatcher the way a signal would: faust shuts down, committing only acks."""
    os.kill(os.getpid(), signal.SIGTERM)


class BatchAcks:
    """Acks each batch of events on its stream once all the batch's sends are acknowledged."""

    def __init__(self, stream: Any, on_failure: Callable[[], None] = stop_process) -> None:
        self.stream = stream
        self.on_failure = on_failure
        self.failed: BaseException | None = None
        self._pending: set[asyncio.Future[Any]] = set()

    def when_sent(self, events: list[Any], sends: list[Awaitable[Any]]) -> None:
        """Ack `events` once every one of `sends` has succeeded."""
        done = asyncio.gather(*sends)
        self._pending.add(done)
        done.add_done_callback(functools.partial(self._sent, events))

    def in_flight(self) -> int:
        """Batches whose sends are not all acknowledged yet."""
        return len(self._pending)

    def _sent(self, events: list[Any], done: asyncio.Future[Any]) -> None:
        self._pending.discard(done)
        error = done.exception() if not done.cancelled() else asyncio.CancelledError()
        if error is not None:
            # None of these events is acked: their offsets stay uncommitted.
            self.failed = self.failed or error
            log.error("jobs of %d events not published (%r); stopping", len(events), error)
            self.on_failure()
            return
        acking = asyncio.ensure_future(self._ack_all(events))
        self._pending.add(acking)
        acking.add_done_callback(self._pending.discard)

    async def _ack_all(self, events: list[Any]) -> None:
        for event in events:
            await self.stream.ack(event)
