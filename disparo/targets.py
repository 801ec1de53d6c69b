"""Which addresses a webhook may be sent to: public unicast, or what the allow-list names.

Pure functions. The worker applies `address_refusal` to every address a host name resolves
to, inside its transport, so the address checked is the address connected to (no DNS
rebinding gap); literal IPs in URLs are checked before any connection (`url_refusal`).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


@dataclass(frozen=True)
class AllowEntry:
    """One `DISPARO_TARGET_ALLOWLIST` entry: a network and, optionally, one port."""

    network: Network
    port: int | None = None

    def admits(self, address: Address, port: int) -> bool:
        return address in self.network and (self.port is None or self.port == port)


def parse_allowlist(text: str) -> tuple[AllowEntry, ...]:
    """Parse `IP`, `CIDR`, `IP:port` or `[IPv6]:port` entries, comma separated."""
    return tuple(_entry(part.strip()) for part in text.split(",") if part.strip())


def _entry(text: str) -> AllowEntry:
    host, port = text, None
    if text.startswith("["):  # [IPv6]:port
        host, sep, rest = text[1:].partition("]")
        if not sep or not rest.startswith(":") or not rest[1:].isdigit():
            raise ValueError(f"{text!r}: write an IPv6 address with a port as [addr]:port")
        port = int(rest[1:])
    elif text.count(":") == 1:  # IPv4:port
        host, _, digits = text.partition(":")
        if not digits.isdigit():
            raise ValueError(f"{text!r}: the port after ':' must be a number")
        port = int(digits)
    if port is not None and not 0 < port < 65536:
        raise ValueError(f"{text!r}: port {port} is out of range")
    try:
        network = ipaddress.ip_network(host, strict=False)
    except ValueError:
        raise ValueError(f"{text!r} is not an IP, CIDR, IP:port or [IPv6]:port") from None
    return AllowEntry(network, port)


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 form carries (mapped, 6to4, Teredo client, NAT64)."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def is_public(address: Address) -> bool:
    """Public unicast: globally routable, not multicast, and embedding no private IPv4."""
    if not address.is_global or address.is_multicast:
        return False
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            return is_public(embedded)
    return True


def address_refusal(
    address: Address, port: int, allowlist: tuple[AllowEntry, ...], host: str = ""
) -> str | None:
    """Why connecting to `address:port` is refused, or None when allowed."""
    if any(entry.admits(address, port) for entry in allowlist):
        return None
    if is_public(address):
        return None
    via = f" ({host} resolves to it)" if host and host != str(address) else ""
    return (
        f"{address} is not a public unicast address{via}; "
        f"add it to DISPARO_TARGET_ALLOWLIST to allow it"
    )


def url_refusal(url: str, allowlist: tuple[AllowEntry, ...]) -> str | None:
    """Why a URL must not be called before any lookup (scheme, host, a literal IP), or None."""
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"}:
        return f"scheme {parts.scheme!r} is not http or https"
    host = (parts.hostname or "").lower()
    if not host:
        return "the URL has no host"
    try:
        address = ipaddress.ip_address(host.partition("%")[0])
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return None  # a host name (checked on the addresses it resolves to) or a bad port
    return address_refusal(address, port, allowlist)
