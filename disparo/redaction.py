"""What a viewer may see of a webhook's headers and URL: no credential, whoever wrote it.

Headers are shown by allow-list, not deny-list: only the ones disparo sets and that carry
no secret read in clear; every rule-supplied value and the signature read as `MASK`. A URL
loses its `user:pass@` and the values of query parameters that look like credentials.
"""

from __future__ import annotations

import functools
import re
from urllib.parse import SplitResult, urlsplit, urlunsplit

MASK = "********"
# Headers disparo itself sets whose values are safe to show (the signature is not).
CLEAR_HEADERS = frozenset(
    {"user-agent", "content-type", "webhook-id", "webhook-timestamp", "disparo-test"}
)
# Query parameter names that carry credentials (`?token=`, `?api_key=`, `?sig=`...).
SECRET_PARAM = re.compile(
    r"token|secret|passw|pwd|auth|key|sig|signature|credential|session|code|hash|hmac",
    re.IGNORECASE,
)
# A value that looks like a credential whatever its parameter is called: long and mixed.
SECRET_VALUE = re.compile(r"^(?=.*[A-Za-z])(?=.*\d)[A-Za-z0-9_\-+/=.~%]{24,}$")


def redacted(headers: dict[str, str]) -> dict[str, str]:
    """The headers as recorded: every value not in `CLEAR_HEADERS` replaced by `MASK`."""
    return {
        name: value if name.lower() in CLEAR_HEADERS else MASK for name, value in headers.items()
    }


def _query_shown(query: str) -> str:
    parts = []
    for pair in query.split("&"):
        name, sep, value = pair.partition("=")
        if sep and value and (SECRET_PARAM.search(name) or SECRET_VALUE.match(value)):
            value = MASK
        parts.append(f"{name}{sep}{value}")
    return "&".join(parts)


@functools.lru_cache(maxsize=4096)
def shown_url(url: str) -> str:
    """The URL as a viewer, the audit or a CSV sees it: credentials masked."""
    try:
        parts = urlsplit(url)
        _ = parts.port  # a malformed port: shown as it is (no credential parsing)
    except ValueError:
        return url
    netloc = parts.netloc
    if "@" in netloc:
        netloc = MASK + "@" + netloc.rpartition("@")[2]
    query = _query_shown(parts.query) if parts.query else ""
    return urlunsplit(SplitResult(parts.scheme, netloc, parts.path, query, parts.fragment))


def url_matches_shown(sent: str, current: str) -> bool:
    """Whether a URL sent back is the masked form of `current` (an update that keeps it)."""
    return MASK in sent and sent == shown_url(current)
