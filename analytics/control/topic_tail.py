"""A reader of one topic from its end, outside any group, that reads only while listened to.

What waits for new records in an API process (a test webhook's answer, the live history)
must see every partition, whichever process's sink owns it, and only what is written from
now on: the reader takes every partition at its end when the first listener comes and lets
them go when the last one leaves.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from analytics.errors import KafkaRefused
from disparo.consumer import plain_consumer
from disparo.errors import KafkaUnavailable
from disparo.settings import KernelSettings

log = logging.getLogger(__name__)
POLL_MS = 200
READY_WAIT_S = 15.0
RETRY_S = 1.0  # after Kafka refused a read


class TopicTail:
    """Subclasses say when someone listens (`listening`) and what to do with records (`take`)."""

    def __init__(self, settings: KernelSettings, topic: str, name: str) -> None:
        self.settings = settings
        self.topic = topic
        self.name = name
        self._cond = threading.Condition()  # guards the listeners; wakes the reader
        self._stop = False
        self._reading = threading.Event()  # partitions taken at their end (or a problem)
        self._problem: str | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def listening(self) -> bool:
        """Whether anyone waits for records (called holding `_cond`)."""
        raise NotImplementedError

    def take(self, polled: dict[TopicPartition, list[Any]]) -> None:
        """Hand one poll's records to the listeners."""
        raise NotImplementedError

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        self._thread.join(10)

    def wait_reading(self, timeout_s: float = READY_WAIT_S) -> None:
        """Return once records written from now on will be read; KafkaRefused if they cannot."""
        if not self._reading.wait(timeout_s) or self._problem:
            raise KafkaRefused(f"cannot read {self.topic}: {self._problem or 'no answer'}")

    def _run(self) -> None:
        consumer: KafkaConsumer | None = None
        while True:
            with self._cond:
                while not self.listening() and not self._stop:
                    if consumer is not None and consumer.assignment():
                        consumer.unsubscribe()  # nobody listens: read nothing
                        self._reading.clear()
                    self._cond.wait()
                if self._stop:
                    break
            try:
                consumer = consumer or plain_consumer(self.settings, f"disparo-{self.name}")
                if not consumer.assignment():
                    self._take_the_end(consumer)
                self.take(consumer.poll(timeout_ms=POLL_MS))
            except (KafkaError, KafkaUnavailable) as exc:
                self._problem = str(exc)
                self._reading.set()  # listeners see the problem instead of waiting it out
                log.warning("%s: %s not readable: %s", self.name, self.topic, exc)
                with self._cond:
                    self._cond.wait(RETRY_S)
                self._problem = None
                self._reading.clear()
        if consumer is not None:
            consumer.close()

    def _take_the_end(self, consumer: KafkaConsumer) -> None:
        partitions = consumer.partitions_for_topic(self.topic) or set()
        tps = [TopicPartition(self.topic, p) for p in sorted(partitions)]
        if not tps:
            raise KafkaUnavailable(f"topic {self.topic} has no partitions yet; is Kafka set up?")
        consumer.assign(tps)
        consumer.seek_to_end(*tps)
        for tp in tps:
            consumer.position(tp)  # fixes the start now, before any listener's job is sent
        self._reading.set()
