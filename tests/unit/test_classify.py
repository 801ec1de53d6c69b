import socket
import ssl

import httpx
import pytest

from consumers import classify
from consumers.targets import refusal


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
        (httpx.RemoteProtocolError("peer closed"), "connection"),
        (httpx.UnsupportedProtocol("gopher"), "invalid_url"),
        (ValueError("odd"), "other"),
    ],
)
def test_reason_for_error_looks_through_the_cause_chain(exc: Exception, reason: str) -> None:
    assert classify.reason_for_error(exc) == reason


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://hooks.example.com/x", True),
        ("http://127.0.0.1:8090/ok", False),
        ("http://localhost/x", False),
        ("http://10.1.2.3/x", False),
        ("http://[::1]/x", False),
        ("http://169.254.169.254/latest", False),
    ],
)
def test_private_and_loopback_targets_need_the_allow_setting(url: str, allowed: bool) -> None:
    assert (refusal(url, allow_private=False) is None) is allowed
    assert refusal(url, allow_private=True) is None


def test_non_http_schemes_are_always_refused() -> None:
    assert "scheme" in (refusal("ftp://example.com/x", allow_private=True) or "")
