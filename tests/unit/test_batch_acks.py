"""The dispatcher acks a batch of events only once Kafka has every record it produced."""

from __future__ import annotations

import asyncio
from typing import Any

from dispatcher.acks import BatchAcks


class RecordingStream:
    """Stands in for a faust stream: records which events were acked."""

    def __init__(self) -> None:
        self.acked: list[Any] = []

    async def ack(self, event: Any) -> bool:
        self.acked.append(event)
        return True


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def test_a_batch_is_acked_only_after_every_send_succeeded() -> None:
    async def scenario() -> tuple[list[Any], list[Any], int]:
        stream, stops = RecordingStream(), []
        acks = BatchAcks(stream, on_failure=lambda: stops.append(1))
        loop = asyncio.get_running_loop()
        first, second = loop.create_future(), loop.create_future()
        acks.when_sent(["e1", "e2"], [first, second])
        first.set_result("metadata")
        await _settle()
        before = list(stream.acked)  # one send still in flight: nothing acked
        second.set_result("metadata")
        await _settle()
        return before, stream.acked, len(stops)

    before, after, stops = asyncio.run(scenario())
    assert before == []
    assert after == ["e1", "e2"]
    assert stops == 0


def test_a_failed_send_acks_none_of_its_batch_and_stops_the_process() -> None:
    async def scenario() -> tuple[list[Any], int, BaseException | None, int]:
        stream, stops = RecordingStream(), []
        acks = BatchAcks(stream, on_failure=lambda: stops.append(1))
        loop = asyncio.get_running_loop()
        ok, failed, later = loop.create_future(), loop.create_future(), loop.create_future()
        acks.when_sent(["e1", "e2"], [ok, failed])
        acks.when_sent(["e3"], [later])
        ok.set_result("metadata")
        failed.set_exception(RuntimeError("broker refused the batch"))
        later.set_result("metadata")
        await _settle()
        return stream.acked, len(stops), acks.failed, acks.in_flight()

    acked, stops, failed, in_flight = asyncio.run(scenario())
    # e3's own sends succeeded, so it is acked; in a partition faust commits no further
    # than the first event not acked (e1 here).
    assert acked == ["e3"]
    assert stops == 1
    assert isinstance(failed, RuntimeError)
    assert "refused" in str(failed)
    assert in_flight == 0


def test_a_batch_that_produced_nothing_is_acked() -> None:
    async def scenario() -> list[Any]:
        stream = RecordingStream()
        acks = BatchAcks(stream, on_failure=lambda: None)
        acks.when_sent(["unmatched"], [])
        await _settle()
        return stream.acked

    assert asyncio.run(scenario()) == ["unmatched"]
