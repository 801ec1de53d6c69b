"""Which webhook targets a deployment may call: private and loopback only when allowed."""

from __future__ import annotations

import functools
import ipaddress
from urllib.parse import urlsplit

_LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}


def refusal(url: str, allow_private: bool) -> str | None:
    """Why a URL must not be called, or None when it may be."""
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"}:
        return f"scheme {parts.scheme!r} is not http or https"
    host = (parts.hostname or "").lower()
    if not host:
        return "the URL has no host"
    if allow_private:
        return None
    if host in _LOCAL_NAMES or host.endswith(".localhost"):
        return f"{host} is a loopback name; set DISPARO_ALLOW_PRIVATE_TARGETS=true to allow it"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    if address.is_private or address.is_loopback or address.is_link_local or address.is_reserved:
        return f"{host} is a private address; set DISPARO_ALLOW_PRIVATE_TARGETS=true to allow it"
    return None


@functools.lru_cache(maxsize=4096)
def refusal_cached(url: str, allow_private: bool) -> str | None:
    """`refusal`, remembered per URL: endpoints repeat across jobs."""
    return refusal(url, allow_private)
