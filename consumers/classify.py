"""Failure classification of one attempt: data plus pure functions, no I/O."""

from __future__ import annotations

import socket
import ssl

import httpx

from consumers.targets import TargetRefused
from disparo.reasons import (
    ATTEMPT_REASONS,
    CIRCUIT_OPEN,
    CONNECTION,
    DISCARDED,
    DNS,
    ENDPOINT_BUSY,
    HELD,
    HTTP_4XX,
    HTTP_5XX,
    HTTP_OTHER,
    INVALID_REQUEST,
    INVALID_RESPONSE,
    INVALID_URL,
    OTHER,
    RATE_LIMITED,
    RESPONSE_TOO_LARGE,
    RULE_DELETED,
    SUCCESS,
    SUPERSEDED,
    TARGET_CHANGED,
    TARGET_REFUSED,
    TIMEOUT,
    TLS,
)

REASONS = ATTEMPT_REASONS  # the reasons live in the kernel; re-exported for this stage
__all__ = [
    "CIRCUIT_OPEN",
    "CONNECTION",
    "DISCARDED",
    "DNS",
    "ENDPOINT_BUSY",
    "HELD",
    "HTTP_4XX",
    "HTTP_5XX",
    "HTTP_OTHER",
    "INVALID_REQUEST",
    "INVALID_RESPONSE",
    "INVALID_URL",
    "OTHER",
    "RATE_LIMITED",
    "REASONS",
    "RESPONSE_TOO_LARGE",
    "RULE_DELETED",
    "SUCCESS",
    "SUPERSEDED",
    "TARGET_CHANGED",
    "TARGET_REFUSED",
    "TIMEOUT",
    "TLS",
    "describe_error",
    "reason_for_error",
    "reason_for_status",
]


def reason_for_status(status: int) -> str:
    """The reason of an HTTP answer: 2xx is success, anything else a failure."""
    if 200 <= status < 300:
        return SUCCESS
    if 400 <= status < 500:
        return HTTP_4XX
    if 500 <= status < 600:
        return HTTP_5XX
    return HTTP_OTHER


def reason_for_error(exc: BaseException) -> str:
    """The reason of a transport error, looking through httpx's wrapping to the cause."""
    chain = _chain(exc)
    if any(isinstance(e, TargetRefused) for e in chain):
        return TARGET_REFUSED
    timed_out = any(isinstance(e, (httpx.TimeoutException, TimeoutError)) for e in chain)
    if timed_out and not any(_looks_like_refusal(e) for e in chain):
        return TIMEOUT
    if any(isinstance(e, ssl.SSLError) for e in chain):
        return TLS
    if any(_looks_like_dns(e) for e in chain):
        return DNS
    if any(isinstance(e, (httpx.UnsupportedProtocol, httpx.InvalidURL)) for e in chain):
        return INVALID_URL
    if any(isinstance(e, httpx.RemoteProtocolError) for e in chain):
        return INVALID_RESPONSE
    if any(isinstance(e, (httpx.TransportError, ConnectionError, OSError)) for e in chain):
        return CONNECTION
    return OTHER


def describe_error(exc: BaseException) -> str:
    """A one-line human text for a transport error."""
    refused = next((e for e in _chain(exc) if isinstance(e, TargetRefused)), None)
    if refused is not None:  # the resolver's words say what to change
        return str(refused)[:500]
    text = str(exc) or type(exc).__name__
    cause = exc.__cause__
    if cause is not None and str(cause) and str(cause) not in text:
        text = f"{text}: {cause}"
    return text[:500]


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def _looks_like_refusal(exc: BaseException) -> bool:
    return isinstance(exc, ConnectionRefusedError)


def _looks_like_dns(exc: BaseException) -> bool:
    if isinstance(exc, socket.gaierror):
        return True
    text = str(exc).lower()
    return "name or service not known" in text or "nodename nor servname" in text
