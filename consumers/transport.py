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
from collections.abc import Callable, Iterator

import aiohttp
import httpx
import yarl

from consumers.targets import GuardedResolver
from disparo.targets import AllowEntry

# Answers are read up to this size (one byte more tells they were larger).
MAX_BODY_BYTES = 1024 * 1024


def translated(exc: BaseException) -> Exception | None:
    """The httpx error for an aiohttp error (raw or wrapped in an httpx one), else None."""
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


class WebhookTransport(httpx.AsyncBaseTransport):
    """httpx's transport interface over one aiohttp session, made for webhooks.

    No redirects, no decompression, and the answer read here, at most `max_body` + 1 bytes
    (one more tells the caller it was too large): the response comes back with its body in
    memory, so nothing streams through httpx's wrappers. Every aiohttp error is translated.
    """

    def __init__(self, session: Callable[[], aiohttp.ClientSession], max_body: int) -> None:
        self._new_session = session
        self._session: aiohttp.ClientSession | None = None
        self.max_body = max_body

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._session is None:
            self._session = self._new_session()
        timeout = request.extensions.get("timeout", {})
        with _translating():
            response = await self._session.request(
                request.method,
                _yarl(str(request.url)),
                headers=[
                    (k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers.raw
                ],
                data=request.content or None,
                allow_redirects=False,
                auto_decompress=False,
                compress=False,
                timeout=aiohttp.ClientTimeout(
                    sock_connect=timeout.get("connect"), sock_read=timeout.get("read")
                ),
            )
            try:
                body = await _read_at_most(response.content, self.max_body + 1)
            finally:
                # A connection goes back to the pool only with its answer read to the end.
                if response.content.at_eof():
                    response.release()
                else:
                    response.close()
        # The body rides as the response's stream, unread by httpx: copying it through
        # httpx's decoders cost ~10 us a delivery (docs/benchmarks.md, issue 29).
        return httpx.Response(
            response.status,
            headers=response.raw_headers,
            stream=httpx.ByteStream(body),
            request=request,
            extensions={"http_version": b"HTTP/1.1"},
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()


async def _read_at_most(content: aiohttp.StreamReader, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while size < limit:
        chunk = await content.read(limit - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def make_transport(
    max_connections: int,
    allowlist: tuple[AllowEntry, ...] = (),
    max_body: int = MAX_BODY_BYTES,
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

    return WebhookTransport(session, max_body)


@functools.lru_cache(maxsize=4096)
def _yarl(url: str) -> yarl.URL:
    """aiohttp's form of an endpoint URL (already encoded by httpx), parsed once per URL."""
    return yarl.URL(url, encoded=True)


@functools.lru_cache(maxsize=4096)
def parsed_url(url: str) -> httpx.URL:
    """Endpoint URLs repeat across jobs; parse each once."""
    return httpx.URL(url)
