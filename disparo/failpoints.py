"""Failpoints for fault tests: `DISPARO_FAILPOINT=<point>=<action>` acts at one named point.

Actions: `exit` (the process dies at once, exit code 86, nothing flushed) and `stall` (the
calling thread never returns). Unset, `hit()` is one dictionary lookup.
"""

from __future__ import annotations

import os
import threading

EXIT_CODE = 86


def _parse(spec: str) -> dict[str, str]:
    point, _, action = spec.partition("=")
    return {point.strip(): action.strip()} if point.strip() else {}


_ARMED = _parse(os.environ.get("DISPARO_FAILPOINT", ""))


def hit(point: str) -> None:
    """Act as the failpoint armed at `point` says, if one is."""
    action = _ARMED.get(point)
    if action == "exit":
        os._exit(EXIT_CODE)
    if action == "stall":
        threading.Event().wait()
