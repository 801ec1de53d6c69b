"""A duty analytics runs on a timer (the rule warden, the rule health judge, the held keeper).

Only the process that owns the duties runs them (`analytics.control.duties`): it starts a
duty when it takes ownership and stops it, waiting for the turn in progress, when it loses it.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime
from typing import Any

from analytics.errors import AnalyticsError
from disparo.schemas import now_utc

log = logging.getLogger(__name__)
STOP_WAIT_S = 30.0  # a turn in progress (a release batch, a notification) is let finish


class Periodic:
    """Calls `check(now)` every `interval_s` between `start()` and `stop()`; a failed turn is
    logged and the next one tries again (history or Kafka away)."""

    what = "check"

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Run the turns on a thread of their own (again after a `stop()`)."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop = threading.Event()
        self.starting()
        self._thread = threading.Thread(
            target=self.run, args=(self._stop,), name=self.what, daemon=True
        )
        self._thread.start()

    def run(self, stop: threading.Event | None = None) -> None:
        """Check on a timer until `stop` is set."""
        stop = stop or self._stop
        while not stop.wait(self.interval_s):
            try:
                self.check(now_utc())
            except AnalyticsError as exc:
                log.warning("%s skipped: %s", self.what, exc)

    def stop(self) -> None:
        """Stop after the turn in progress, and wait for it."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(STOP_WAIT_S)
            if thread.is_alive():
                log.error("%s still in a turn after %.0f s; left to finish", self.what, STOP_WAIT_S)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and not self._stop.is_set()

    def starting(self) -> None:
        """Called as the duty is (re)started, before its first turn."""

    def check(self, now: datetime) -> Any:
        """One turn."""
        raise NotImplementedError
