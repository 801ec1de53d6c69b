"""The worker's SSRF guard: a resolver that hands the connector only allowed addresses.

aiohttp connects to exactly the addresses its resolver returns, so filtering here checks the
address actually connected to; a name that rebinds between lookups gains nothing. URLs with
a literal IP never reach a resolver: `refusal_cached` checks them before the request.
"""

from __future__ import annotations

import functools
import ipaddress
import socket

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from disparo.targets import AllowEntry, address_refusal, url_refusal


class TargetRefused(OSError):
    """Every address of a target is refused; the attempt fails with `target_refused`."""


class GuardedResolver(AbstractResolver):
    """Resolves with aiohttp's default resolver and drops every address not allowed."""

    def __init__(self, allowlist: tuple[AllowEntry, ...]) -> None:
        self.allowlist = allowlist
        self._inner = DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        """The allowed addresses of `host`; TargetRefused when none is."""
        # RFC 6761: every *.localhost name, with or without the root dot, is loopback.
        name = host.rstrip(".").lower()
        lookup = "localhost" if name == "localhost" or name.endswith(".localhost") else host
        results = await self._inner.resolve(lookup, port, family)
        allowed, refusals = [], []
        for result in results:
            address = ipaddress.ip_address(result["host"].partition("%")[0])
            refused = address_refusal(address, port, self.allowlist, host)
            if refused is None:
                allowed.append(result)
            else:
                refusals.append(refused)
        if not allowed:
            raise TargetRefused(refusals[0] if refusals else f"{host} has no address")
        return allowed

    async def close(self) -> None:
        await self._inner.close()


@functools.lru_cache(maxsize=4096)
def refusal_cached(url: str, allowlist: tuple[AllowEntry, ...]) -> str | None:
    """`url_refusal`, remembered per URL: endpoints repeat across jobs."""
    return url_refusal(url, allowlist)
