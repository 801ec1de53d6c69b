"""A check analytics runs on a timer (the rule warden, the rule health judge)."""

from __future__ import annotations

import logging
import threading
from datetime import datetime
from typing import Any

from analytics.errors import AnalyticsError
from disparo.schemas import now_utc

log = logging.getLogger(__name__)


class Periodic:
    """Calls `check(now)` every `interval_s` until `stop()`; a failed turn is logged and the
    next one tries again (history or Kafka away)."""

    what = "check"

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self._stop = threading.Event()

    def run(self) -> None:
        """Check on a timer until `stop()`."""
        while not self._stop.wait(self.interval_s):
            try:
                self.check(now_utc())
            except AnalyticsError as exc:
                log.warning("%s skipped: %s", self.what, exc)

    def stop(self) -> None:
        self._stop.set()

    def check(self, now: datetime) -> Any:
        """One turn."""
        raise NotImplementedError
