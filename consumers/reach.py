"""Which transport carries an account's webhooks, and which non-public targets it may reach.

Most accounts share one transport. An account a platform admin gave allow-list entries of
its own gets a transport of its own: its own resolver (admitting those entries) and its own
connection pool, so a connection opened to an address only that account may reach never
carries another account's webhook.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx

from disparo.targets import AllowEntry

Entries = tuple[AllowEntry, ...]


class Reach:
    """The transport and allow-list of each account's webhooks."""

    def __init__(
        self,
        shared: httpx.AsyncBaseTransport,
        allowlist: Entries = (),
        make: Callable[[Entries], httpx.AsyncBaseTransport] | None = None,
        entries_of: Callable[[str], Entries] | None = None,
    ) -> None:
        self.shared = shared
        self.allowlist = allowlist
        self.make = make
        self.entries_of = entries_of
        self._own: dict[str, tuple[Entries, httpx.AsyncBaseTransport]] = {}
        self._retired: list[httpx.AsyncBaseTransport] = []  # closed at the end: may be in use

    def of(self, account_id: str) -> tuple[httpx.AsyncBaseTransport, Entries]:
        """The transport for an account's webhook and the targets it may reach."""
        own = self.entries_of(account_id) if self.entries_of is not None else ()
        if not own or self.make is None:
            return self.shared, self.allowlist
        allowed = self.allowlist + own
        held = self._own.get(account_id)
        if held is not None and held[0] == own:
            return held[1], allowed
        if held is not None:  # the account's entries changed: a new pool under the new ones
            self._retired.append(held[1])
        transport = self.make(allowed)
        self._own[account_id] = (own, transport)
        return transport, allowed

    async def aclose(self) -> None:
        """Close every transport this made (not the shared one: its owner closes it)."""
        for transport in [*self._retired, *(t for _, t in self._own.values())]:
            await transport.aclose()
        self._own.clear()
        self._retired.clear()
