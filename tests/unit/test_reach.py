"""Each account's webhooks go through the transport its allow-list entries call for."""

from __future__ import annotations

import asyncio

import httpx

from consumers.reach import Entries, Reach
from disparo.targets import parse_allowlist

GLOBAL = parse_allowlist("10.0.0.1:443")
OWN = {"acme": parse_allowlist("127.0.0.1:8080")}


def test_accounts_without_entries_share_one_transport_others_get_their_own() -> None:
    shared = httpx.MockTransport(lambda r: httpx.Response(200))
    made: list[Entries] = []

    def make(allowed: Entries) -> httpx.AsyncBaseTransport:
        made.append(allowed)
        return httpx.MockTransport(lambda r: httpx.Response(200))

    entries = dict(OWN)
    reach = Reach(shared, GLOBAL, make, lambda account: entries.get(account, ()))
    assert reach.of("globex") == (shared, GLOBAL)
    acme, allowed = reach.of("acme")
    assert acme is not shared
    assert allowed == GLOBAL + OWN["acme"]
    assert reach.of("acme")[0] is acme  # made once while its entries stay
    entries["acme"] = parse_allowlist("127.0.0.1:9090")
    renewed, allowed = reach.of("acme")
    assert renewed is not acme
    assert allowed[-1].port == 9090
    assert made == [GLOBAL + OWN["acme"], GLOBAL + entries["acme"]]
    asyncio.run(reach.aclose())
