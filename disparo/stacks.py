"""Every thread's stack as text, read from the interpreter without a signal.

The embedded ClickHouse (chdb) installs signal handlers of its own; a faulthandler dump on
SIGUSR1 left it answering "The server is shutting down due to a fatal error".
"""

from __future__ import annotations

import sys
import threading
import traceback


def thread_stacks() -> str:
    """One block per thread: its name, then its stack, innermost call last."""
    names = {thread.ident: thread.name for thread in threading.enumerate()}
    blocks = []
    for ident, frame in sorted(sys._current_frames().items()):
        lines = "".join(traceback.format_stack(frame)).rstrip()
        blocks.append(f"--- thread {names.get(ident, ident)} ({ident})\n{lines}")
    return "\n".join(blocks) + "\n"
