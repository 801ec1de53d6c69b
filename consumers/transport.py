"""The HTTP transport the workers POST through: httpx's request/response API, aiohttp's pool.

Every aiohttp error is translated here, at the boundary, into the httpx error that names
what happened, so classification sees one hierarchy: a malformed answer is a
`RemoteProtocolError`, a reset a `ReadError`, a refused target a `ConnectError` caused by
`TargetRefused`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator, Iterator

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport

from consumers.targets import GuardedResolver
from disparo.targets import AllowEntry


def translated(exc: BaseException) -> Exception | None:
    """The httpx error for an aiohttp error (raw or wrapped by httpx-aiohttp), else None."""
    cause = exc.__cause__ if isinstance(exc, httpx.HTTPError) else exc
    if not isinstance(cause, (aiohttp.ClientError, asyncio.TimeoutError)):
        return None
    text = str(cause) or type(cause).__name__
    if isinstance(cause, asyncio.TimeoutError):  # aiohttp's ServerTimeoutError too
        error: Exception = httpx.ReadTimeout(text)
    elif isinstance(cause, aiohttp.ClientConnectorError):
        error = httpx.ConnectError(text)  # refused, DNS, TLS, target refused: see the cause
    elif isinstance(cause, aiohttp.ClientResponseError):  # its status is aiohttp's, not theirs
        error = httpx.RemoteProtocolError(f"the answer is not valid HTTP: {cause.message}")
    elif isinstance(cause, aiohttp.ClientPayloadError):
        error = httpx.RemoteProtocolError(f"the answer's body is broken: {text}")
    elif isinstance(cause, aiohttp.ClientConnectionError):
        error = httpx.ReadError(text)  # reset or closed by the endpoint
    elif isinstance(cause, aiohttp.InvalidURL):
        error = httpx.InvalidURL(text)
    else:
        error = httpx.TransportError(text)
    error.__cause__ = cause
    return error


@contextlib.contextmanager
def _translating() -> Iterator[None]:
    """Re-raise an aiohttp error as its httpx translation; anything else as it is."""
    try:
        yield
    except Exception as exc:
        error = translated(exc)
        if error is None:
            raise
        raise error from error.__cause__


class WebhookTransport(AiohttpTransport):
    """httpx-aiohttp's transport with every aiohttp error translated (see `translated`)."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        with _translating():
            response = await super().handle_async_request(request)
        response.stream = _TranslatedStream(response.stream)
        return response


class _TranslatedStream(httpx.AsyncByteStream):
    def __init__(self, inner: httpx.SyncByteStream | httpx.AsyncByteStream) -> None:
        assert isinstance(inner, httpx.AsyncByteStream)
        self._inner = inner

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _translating():
            async for chunk in self._inner:
                yield chunk

    async def aclose(self) -> None:
        await self._inner.aclose()


def make_transport(
    max_connections: int, allowlist: tuple[AllowEntry, ...] = ()
) -> httpx.AsyncBaseTransport:
    """One shared transport; aiohttp keeps connections alive per host and stores no cookies.

    The worker talks to the transport directly rather than through `httpx.AsyncClient`:
    webhooks need no redirects, auth flows or cookie jar, and that client machinery cost
    more than the POST itself (docs/benchmarks.md has the figures). httpx's own pool also
    slows down as concurrency in one client grows; aiohttp's does not. Host names resolve
    through `GuardedResolver`, so only allowed addresses are ever connected to.
    """

    def session() -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            limit=max_connections,
            keepalive_timeout=30.0,
            resolver=GuardedResolver(allowlist),
        )
        return aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar())

    return WebhookTransport(client=session, trust_env=False)


@functools.lru_cache(maxsize=4096)
def parsed_url(url: str) -> httpx.URL:
    """Endpoint URLs repeat across jobs; parse each once."""
    return httpx.URL(url)
