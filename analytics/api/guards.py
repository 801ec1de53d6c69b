"""The browser boundary of the API: the Host allow-list, body limits, security headers.

Pure ASGI middleware, so a body over its limit is refused while it streams in (413 naming
the limit), before any route reads it.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Sequence

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from disparo.ops_http import HEALTH_PATH, METRICS_PATH, READY_PATH

KIB = 1024
MIB = 1024 * KIB
# (method, path prefix, limit): the first match wins.
BODY_LIMITS: tuple[tuple[str, str, int], ...] = (
    ("POST", "/api/v1/events", 10 * MIB),
    ("POST", "/api/v1/resend/latest", 4 * MIB),  # up to 10,000 order numbers
    ("POST", "/api/v1/rules", 64 * KIB),
    ("PUT", "/api/v1/rules", 64 * KIB),
)
DEFAULT_BODY_LIMIT = 16 * KIB
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", b"default-src 'self'; frame-ancestors 'none'"),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
)

_SCRIPTED_DOCS = frozenset({"/docs", "/docs/oauth2-redirect", "/redoc"})


def body_limit(method: str, path: str) -> int:
    """The largest request body, in bytes, a route accepts."""
    for limit_method, prefix, limit in BODY_LIMITS:
        if method == limit_method and path.startswith(prefix):
            return limit
    return DEFAULT_BODY_LIMIT


def _human(size: int) -> str:
    return f"{size // MIB} MiB" if size % MIB == 0 else f"{size // KIB} KiB"


class _TooLarge(Exception):
    pass


async def _answer(send: Send, status: int, error: str) -> None:
    body = json.dumps({"error": error}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class BodyLimit:
    """Refuses request bodies over their route's limit with 413 (see BODY_LIMITS)."""

    def __init__(self, app: ASGIApp, limit_for: Callable[[str, str], int] = body_limit) -> None:
        self.app = app
        self.limit_for = limit_for

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["method"], scope["path"])
        too_large = f"request body over {_human(limit)}, the limit of {scope['path']}"
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None:
            if not declared.isdigit():
                await _answer(send, 400, "Content-Length is not a number")
                return
            if int(declared) > limit:
                await _answer(send, 413, too_large)
                return
        received = 0
        answered = False  # the 413 went out: whatever the app answers after it is dropped

        async def counted() -> Message:
            nonlocal received, answered
            message = await receive()
            received += len(message.get("body", b""))
            if received > limit and not answered:
                answered = True
                await _answer(send, 413, too_large)
                raise _TooLarge  # FastAPI may turn it into a 400, which `watched` drops
            return message

        async def watched(message: Message) -> None:
            if not answered:
                await send(message)

        with contextlib.suppress(_TooLarge):  # already answered 413
            await self.app(scope, counted, watched)


class SecurityHeaders:
    """Adds the page's security headers (CSP, no framing, no sniffing, no referrer)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        # FastAPI's interactive docs run inline scripts from a CDN; they keep the other headers.
        extra = SECURITY_HEADERS[1:] if scope["path"] in _SCRIPTED_DOCS else SECURITY_HEADERS

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                # A page that set its own CSP (a portal link's frame-ancestors) keeps it, and
                # is framed by what it names: no X-Frame-Options then.
                own = any(name.lower() == b"content-security-policy" for name, _ in headers)
                skip = {b"content-security-policy", b"x-frame-options"} if own else set()
                headers += [(name, value) for name, value in extra if name not in skip]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)


# Probes and scrapers address a pod by its IP; these paths reveal nothing a rebinding
# page could use, so they answer whatever the Host.
_ANY_HOST_PATHS = frozenset({HEALTH_PATH, READY_PATH, METRICS_PATH})


def host_allowed(host: str, allowed: Sequence[str]) -> bool:
    """Whether a Host header value (port ignored) matches the allow-list."""
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    name = name.lower().rstrip(".")
    for pattern in allowed:
        pattern = pattern.lower()
        if pattern == "*" or name == pattern:
            return True
        if pattern.startswith("*.") and name.endswith(pattern[1:]):
            return True
    return False


class HostAllowlist:
    """Answers 400 to a request whose Host is not listed: no DNS rebinding onto the API."""

    def __init__(self, app: ASGIApp, allowed: Sequence[str]) -> None:
        self.app = app
        self.allowed = tuple(allowed)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] not in _ANY_HOST_PATHS:
            host = dict(scope["headers"]).get(b"host", b"").decode("latin-1")
            if not host_allowed(host, self.allowed):
                error = f"Host {host[:100]!r} is not in DISPARO_API_ALLOWED_HOSTS"
                await _answer(send, 400, error)
                return
        await self.app(scope, receive, send)
