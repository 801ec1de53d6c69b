"""The bounds every rule's target must keep (design.md "Targets and limits"): pure checks.

The API refuses a rule that breaks them (422 naming the field); the worker checks each job
too, so a rule stored before a limit existed fails its attempts with a reason instead of
crashing the POST.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from disparo import filters

# Attempts of one dispatch, resends included: far below the UInt16 `attempt` column.
MAX_ATTEMPT = 1000
MAX_URL_CHARS = 2048
MAX_HEADERS = 32
MAX_HEADER_NAME_CHARS = 256
MAX_HEADER_VALUE_CHARS = 8192
# RFC 9110 token: the characters a field name may use.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# Visible ASCII and spaces: no control characters (CR, LF, NUL), nothing beyond ASCII.
_VALUE = re.compile(r"[\x20-\x7e]*")
# Framing and connection headers belong to the HTTP client; webhook-* to the signature;
# disparo-* to disparo (`disparo-test: 1` marks a test webhook: a rule may not fake it).
# Expect, Upgrade, TE, Trailer, Keep-Alive and Proxy-* change how the request is framed or
# routed, not what it says: a rule header must not turn a POST into something else.
_RESERVED = {
    "host", "content-length", "transfer-encoding", "connection", "content-type",
    "expect", "upgrade", "te", "trailer", "keep-alive",
}  # fmt: skip
_RESERVED_PREFIXES = ("webhook-", "disparo-", "proxy-")


def url_problem(url: str) -> str | None:
    """Why a target URL is out of bounds, or None."""
    if len(url) > MAX_URL_CHARS:
        return f"the URL has {len(url)} characters; at most {MAX_URL_CHARS} are allowed"
    return None


def refuse_long_url(value: Any) -> Any:
    """A `mode="before"` validator: a URL text over the limit is refused before parsing."""
    problem = url_problem(value) if isinstance(value, str) else None
    if problem is not None:
        raise ValueError(problem)
    return value


def header_problem(name: str, value: str) -> str | None:
    """Why one custom header cannot be sent, or None."""
    if not _TOKEN.fullmatch(name) or len(name) > MAX_HEADER_NAME_CHARS:
        return f"header name {name[:40]!r} is not an HTTP token (letters, digits, !#$%&'*+-.^_`|~)"
    lower = name.lower()
    if lower in _RESERVED or lower.startswith(_RESERVED_PREFIXES):
        return f"header {name!r} is set by disparo or the HTTP client and cannot be given"
    if len(value) > MAX_HEADER_VALUE_CHARS:
        return f"header {name!r} has a value over {MAX_HEADER_VALUE_CHARS} characters"
    if not _VALUE.fullmatch(value):
        return f"header {name!r} has a character that is not visible ASCII or a space"
    return None


def headers_problem(headers: Mapping[str, str]) -> str | None:
    """Why a rule's custom headers cannot be sent, or None."""
    if len(headers) > MAX_HEADERS:
        return f"{len(headers)} headers; at most {MAX_HEADERS} are allowed"
    for name, value in headers.items():
        problem = header_problem(name, value)
        if problem is not None:
            return problem
    return None


def request_problem(url: str, headers: Mapping[str, str]) -> str | None:
    """Why a target's URL or headers cannot be sent, or None."""
    return url_problem(url) or headers_problem(headers)


MAX_FILTERS = 20
MAX_FILTER_VALUES = filters.MAX_VALUES
MAX_FILTER_CHARS = filters.MAX_CHARS


def filters_problem(specs: Mapping[str, Any]) -> str | None:
    """Why a rule's filters are out of bounds or malformed, or None (they become SQL in a
    dry run)."""
    if len(specs) > MAX_FILTERS:
        return f"{len(specs)} filters; at most {MAX_FILTERS} are allowed"
    for path, spec in specs.items():
        if not path or len(path) > MAX_FILTER_CHARS:
            return f"filter path {path[:40]!r} must have 1 to {MAX_FILTER_CHARS} characters"
        problem = filters.spec_problem(spec)
        if problem is not None:
            return f"filter {path!r} {problem}"
    return None
