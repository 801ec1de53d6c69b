"""The httpx client the workers POST with: httpx's API over aiohttp's connection pool."""

from __future__ import annotations

import httpx
from httpx_aiohttp import AiohttpTransport


def make_client(max_connections: int) -> httpx.AsyncClient:
    """One shared client; aiohttp's pool keeps connections alive per host.

    httpx's own pool slows down as concurrency in one client grows (about 1,300 req/s at 4
    connections, 380 at 64 on the 2-core machine); the aiohttp transport keeps the httpx API
    at several times that. docs/benchmarks.md has the figures.
    """
    limits = httpx.Limits(
        max_connections=max_connections,
        max_keepalive_connections=max_connections,
        keepalive_expiry=30.0,
    )
    transport = AiohttpTransport(limits=limits, trust_env=False)
    return httpx.AsyncClient(
        transport=transport,
        follow_redirects=False,
        trust_env=False,
        headers={"user-agent": "disparo-webhooks/0.1"},
    )
