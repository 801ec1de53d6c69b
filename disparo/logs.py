"""Process logging: one JSON object per line (or plain text), fields kept as fields."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

# Attributes a log call may pass with `extra=` that become fields of the JSON line.
FIELDS = ("dispatch_id", "order_id", "rule_id", "attempt", "reason", "retry_tier", "endpoint")


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object: time, level, logger, message and known fields."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for name in FIELDS:
            if hasattr(record, name):
                line[name] = getattr(record, name)
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def setup(level: str, fmt: str) -> None:
    """Send every log record to stderr as JSON lines (`json`) or readable text (`text`)."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # One line per POST from httpx, and per connection from kafka-python, drown the signal.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("kafka").setLevel(max(logging.INFO, logging.getLevelName(level)))
