"""The HTTP transport the workers POST through: httpx's request/response API, aiohttp's pool."""

from __future__ import annotations

import functools

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport


def make_transport(max_connections: int) -> httpx.AsyncBaseTransport:
    """One shared transport; aiohttp keeps connections alive per host and stores no cookies.

    The worker talks to the transport directly rather than through `httpx.AsyncClient`:
    webhooks need no redirects, auth flows or cookie jar, and that client machinery cost
    more than the POST itself (docs/benchmarks.md has the figures). httpx's own pool also
    slows down as concurrency in one client grows; aiohttp's does not.
    """

    def session() -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(limit=max_connections, keepalive_timeout=30.0)
        return aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar())

    return AiohttpTransport(client=session, trust_env=False)


@functools.lru_cache(maxsize=4096)
def parsed_url(url: str) -> httpx.URL:
    """Endpoint URLs repeat across jobs; parse each once."""
    return httpx.URL(url)
