"""faust's aiokafka transport, with the consumer's fetch wait short enough not to stall events.

aiokafka keeps one fetch in flight per broker and leaves out of it every partition whose
records are still buffered. faust creates its consumer with `fetch_max_wait_ms=1500`
(written into the driver, no setting reaches it): a fetch sent while the event partitions
were all buffered asks only for the idle ones (the rules topic, a quiet partition) and
the broker holds it 1.5 s, so the events drained meanwhile wait that long for their next
fetch. Under a burst the dispatcher sat idle for 1.2-1.5 s of every run this way
(docs/benchmarks.md, issue 29).
"""

from __future__ import annotations

from typing import Any

import aiokafka
import faust
from faust.transport.drivers import aiokafka as faust_aiokafka

from disparo.errors import DisparoError

# Longest the broker may hold a fetch that finds nothing new; with data it answers at once.
FETCH_MAX_WAIT_MS = 50


class _ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> aiokafka.AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        if not hasattr(consumer, "_fetch_max_wait_ms"):  # read by the fetcher it starts
            raise DisparoError("this aiokafka does not take the dispatcher's fetch wait")
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS
        return consumer


class _Consumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class Transport(faust_aiokafka.Transport):
    """faust's aiokafka transport whose consumer waits at most `FETCH_MAX_WAIT_MS`."""

    Consumer = _Consumer


def use_short_fetch_wait(app: faust.App) -> None:
    """Give `app` the transport above (before anything has asked for its transport)."""
    app.transport = Transport(app.conf.broker_consumer, app)
