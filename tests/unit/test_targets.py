import asyncio
import ipaddress

import pytest

from consumers.targets import GuardedResolver, TargetRefused
from disparo.targets import address_refusal, is_public, parse_allowlist, url_refusal


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("93.184.215.14", True),
        ("2606:4700::1111", True),
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),  # cloud metadata
        ("100.64.0.1", False),  # CGNAT
        ("224.0.0.251", False),  # multicast
        ("0.0.0.0", False),
        ("::1", False),
        ("fe80::1", False),
        ("fc00::1", False),
        ("ff02::1", False),
        ("::ffff:127.0.0.1", False),  # IPv4-mapped
        ("2002:7f00:1::", False),  # 6to4 of 127.0.0.1
        ("2002:a00:1::", False),  # 6to4 of 10.0.0.1
        ("2002:5db8:d70e::", True),  # 6to4 of a public address
        ("64:ff9b::a9fe:a9fe", False),  # NAT64 of 169.254.169.254
        ("64:ff9b:1::808:808", False),  # local-use NAT64 (RFC 8215), whatever it embeds
        ("::ffff:8.8.8.8", True),  # IPv4-mapped public: as public as the address it maps
        ("::ffff:0:a00:1", False),  # IPv4-translated (RFC 2765) of 10.0.0.1
        ("fec0::1", False),  # site-local (deprecated)
    ],
)
def test_only_public_unicast_addresses_are_public(address: str, public: bool) -> None:
    assert is_public(ipaddress.ip_address(address)) is public


def test_allowlist_entries_admit_their_network_and_port_only() -> None:
    allow = parse_allowlist("127.0.0.1:8080, 10.0.0.0/8:*, [::1]:9000")
    loopback = ipaddress.ip_address("127.0.0.1")
    assert address_refusal(loopback, 8080, allow) is None
    assert address_refusal(loopback, 8081, allow) is not None
    assert address_refusal(ipaddress.ip_address("10.9.9.9"), 1, allow) is None
    assert address_refusal(ipaddress.ip_address("::1"), 9000, allow) is None
    assert address_refusal(ipaddress.ip_address("::1"), 9001, allow) is not None


@pytest.mark.parametrize(
    "bad", ["localhost:80", "10.0.0.0/33:*", "1.2.3.4:x", "[::1]", "1.2.3.4:0", "10.0.0.0/8"]
)
def test_bad_allowlist_entries_are_refused_with_the_entry_and_a_hint(bad: str) -> None:
    with pytest.raises(ValueError, match=r"1\.2\.3\.4|localhost|10\.0\.0\.0|::1") as caught:
        parse_allowlist(bad)
    assert "10.1.2.3:8443" in str(caught.value)


def test_an_entry_without_a_port_opens_nothing_and_a_star_opens_every_port() -> None:
    with pytest.raises(ValueError, match="names no port"):
        parse_allowlist("10.1.2.3")
    [entry] = parse_allowlist("10.1.2.3:*")
    assert entry.admits(ipaddress.ip_address("10.1.2.3"), 1)
    assert entry.admits(ipaddress.ip_address("10.1.2.3"), 65535)


def test_a_refusal_names_the_exact_entry_that_would_allow_it() -> None:
    refused = address_refusal(ipaddress.ip_address("10.1.2.3"), 8443, ())
    assert refused is not None
    assert "10.1.2.3:8443" in refused
    refused6 = address_refusal(ipaddress.ip_address("fd00::1"), 443, ())
    assert refused6 is not None
    assert "[fd00::1]:443" in refused6


def test_literal_urls_are_judged_before_any_lookup() -> None:
    assert url_refusal("https://hooks.example.com/x", ()) is None  # names: at resolution
    assert url_refusal("http://169.254.169.254/latest", ()) is not None
    assert url_refusal("http://[::ffff:7f00:1]:80/x", ()) is not None
    assert url_refusal("http://127.0.0.1:9/x", parse_allowlist("127.0.0.1:9")) is None
    assert "scheme" in (url_refusal("ftp://example.com/x", ()) or "")


def test_the_resolver_drops_loopback_unless_allow_listed() -> None:
    async def resolve(allow: str, host: str) -> list[str]:
        resolver = GuardedResolver(parse_allowlist(allow))
        try:
            return [r["host"] for r in await resolver.resolve(host, 8080)]
        finally:
            await resolver.close()

    for host in ("localhost", "localhost."):
        with pytest.raises(TargetRefused, match="DISPARO_TARGET_ALLOWLIST"):
            asyncio.run(resolve("", host))
    assert asyncio.run(resolve("127.0.0.1:8080", "localhost")) == ["127.0.0.1"]
    with pytest.raises(TargetRefused):
        asyncio.run(resolve("127.0.0.1:8081", "localhost"))
