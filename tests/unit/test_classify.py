import socket
import ssl

import httpx
import pytest

from consumers import classify
from consumers.targets import TargetRefused


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        (200, "ok"),
        (299, "ok"),
        (404, "http_4xx"),
        (429, "http_4xx"),
        (500, "http_5xx"),
        (101, "http_other"),
        (304, "http_other"),
    ],
)
def test_reason_for_status(status: int, reason: str) -> None:
    assert classify.reason_for_status(status) == reason


def _wrapped(outer: Exception, cause: BaseException) -> Exception:
    outer.__cause__ = cause
    return outer


@pytest.mark.parametrize(
    ("exc", "reason"),
    [
        (httpx.ConnectTimeout("t"), "timeout"),
        (TimeoutError(), "timeout"),
        (
            _wrapped(httpx.ConnectError("x"), socket.gaierror(-2, "Name or service not known")),
            "dns",
        ),
        (_wrapped(httpx.ConnectError("x"), ssl.SSLError(1, "bad cert")), "tls"),
        (_wrapped(httpx.ConnectTimeout("x"), ConnectionRefusedError()), "connection"),
        (httpx.RemoteProtocolError("bad status line"), "invalid_response"),
        (httpx.ReadError("reset by peer"), "connection"),
        (
            _wrapped(httpx.ConnectError("x"), TargetRefused("10.0.0.1 is not public")),
            "target_refused",
        ),
        (httpx.UnsupportedProtocol("gopher"), "invalid_url"),
        (ValueError("odd"), "other"),
    ],
)
def test_reason_for_error_looks_through_the_cause_chain(exc: Exception, reason: str) -> None:
    assert classify.reason_for_error(exc) == reason
