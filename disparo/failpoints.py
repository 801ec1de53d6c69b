"""Failpoints for fault tests: `DISPARO_FAILPOINT=<point>=<action>` acts at one named point.

Actions: `exit` (the process dies at once, exit code 86, nothing flushed), `stall` (the
calling thread never returns) and `raise:<prefix>` (FailpointError when the subject passed
to `hit` starts with `<prefix>`). Unset, `hit()` is one dictionary lookup.
"""

from __future__ import annotations

import os
import threading

EXIT_CODE = 86


def _parse(spec: str) -> dict[str, str]:
    point, _, action = spec.partition("=")
    return {point.strip(): action.strip()} if point.strip() else {}


_ARMED = _parse(os.environ.get("DISPARO_FAILPOINT", ""))


class FailpointError(RuntimeError):
    """Raised by a `raise:` failpoint: stands for any unforeseen error at that point."""


def hit(point: str, subject: str = "") -> None:
    """Act as the failpoint armed at `point` says, if one is."""
    action = _ARMED.get(point)
    if action is None:
        return
    if action.startswith("raise:") and subject.startswith(action.removeprefix("raise:")):
        raise FailpointError(f"failpoint {point} raised for {subject}")
    if action == "exit":
        os._exit(EXIT_CODE)
    if action == "stall":
        threading.Event().wait()
