"""The asyncio event loop disparo's async services run on: uvloop where available."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any


def install_fast_loop() -> bool:
    """Make new event loops uvloop loops; False (and the stdlib loop) where it is missing."""
    try:
        import uvloop
    except ImportError:
        return False
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return True


def run(main: Coroutine[Any, Any, None]) -> None:
    """Run a coroutine to completion on the fastest available loop."""
    install_fast_loop()
    asyncio.run(main)
