import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from disparo.limits import (
    MAX_HEADERS,
    MAX_URL_CHARS,
    header_problem,
    headers_problem,
    request_problem,
    url_problem,
)


def test_url_length_at_the_edge_and_past_it() -> None:
    base = "https://hooks.example.com/"
    assert url_problem(base + "a" * (MAX_URL_CHARS - len(base))) is None
    problem = url_problem(base + "a" * (MAX_URL_CHARS - len(base) + 1))
    assert problem is not None
    assert "2048" in problem


def test_header_count_at_the_edge_and_past_it() -> None:
    headers = {f"x-h{i}": "v" for i in range(MAX_HEADERS)}
    assert headers_problem(headers) is None
    problem = headers_problem({**headers, "x-one-more": "v"})
    assert problem is not None
    assert "at most 32" in problem


@pytest.mark.parametrize(
    ("name", "value", "fragment"),
    [
        ("x api key", "v", "not an HTTP token"),
        ("x-ok", "caf\u00e9", "not visible ASCII"),
        ("x-ok", "a\r\nInjected: 1", "not visible ASCII"),
        ("x-ok", "a\x00b", "not visible ASCII"),
        ("Host", "evil.example", "cannot be given"),
        ("content-length", "1", "cannot be given"),
        ("Transfer-Encoding", "chunked", "cannot be given"),
        ("connection", "close", "cannot be given"),
        ("webhook-signature", "v1,x", "cannot be given"),
        ("Webhook-Anything", "x", "cannot be given"),
    ],
)
def test_headers_that_cannot_be_sent_are_named(name: str, value: str, fragment: str) -> None:
    problem = header_problem(name, value)
    assert problem is not None
    assert fragment in problem


def test_a_normal_bearer_header_is_accepted() -> None:
    assert request_problem("https://x.example/h", {"Authorization": "Bearer abc.def"}) is None


@given(st.text(max_size=30), st.text(max_size=60))
def test_an_accepted_header_is_one_httpx_sends_verbatim(name: str, value: str) -> None:
    if header_problem(name, value) is not None:
        return
    request = httpx.Request("POST", "https://x.example/h", headers={name: value})
    [sent] = [v for k, v in request.headers.raw if k.lower() == name.lower().encode("ascii")]
    assert sent.strip() == value.strip().encode("ascii")
    assert not ({b"\r", b"\n", b"\x00"} & {bytes([c]) for c in sent})


@pytest.mark.parametrize(
    "name",
    ["Expect", "Upgrade", "TE", "Trailer", "Keep-Alive", "Proxy-Authorization", "proxy-x"],
)
def test_headers_that_change_framing_or_routing_are_refused(name: str) -> None:
    problem = header_problem(name, "v")
    assert problem is not None
    assert name in problem
    assert header_problem("X-" + name, "v") is None  # only the names themselves
