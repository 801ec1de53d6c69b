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
# Never public, whatever `is_global` says on this interpreter's patch level: local-use NAT64
# (RFC 8215), IPv4-translated (RFC 2765), site-local (deprecated, RFC 3879), unique local.
_NEVER_PUBLIC_V6 = tuple(
    ipaddress.IPv6Network(n)
    for n in ("64:ff9b:1::/48", "::ffff:0:0:0/96", "fec0::/10", "fc00::/7", "fe80::/10")
)
_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")
ANY_PORT = "*"


@dataclass(frozen=True)
class AllowEntry:
    """One allow-list entry: a network and one port (None: every port, written `:*`)."""

    network: Network
    port: int | None = None

    def admits(self, address: Address, port: int) -> bool:
        return address in self.network and (self.port is None or self.port == port)


def parse_allowlist(text: str) -> tuple[AllowEntry, ...]:
    """Parse `IP:port`, `CIDR:port` or `[IPv6]:port` entries (`*` for every port), comma
    separated; an entry without a port is refused, so no entry opens more than it says."""
    return tuple(parse_entry(part.strip()) for part in text.split(",") if part.strip())


_FORMS = "write 10.1.2.3:8443 for one port, 10.1.2.3:* for every port, [fd00::1]:8443 for IPv6"


def parse_entry(text: str) -> AllowEntry:
    """One entry: `IP:port`, `CIDR:port`, `[IPv6 or CIDR]:port`; `*` as the port: every port."""
    if text.startswith("["):  # [IPv6]:port
        host, sep, rest = text[1:].partition("]")
        if not sep or not rest.startswith(":"):
            raise ValueError(f"{text!r} names no port: {_FORMS}")
        digits = rest[1:]
    else:
        host, sep, digits = text.rpartition(":")
        if not sep or ":" in host:
            raise ValueError(f"{text!r} names no port: {_FORMS}")
    try:
        network = ipaddress.ip_network(host, strict=False)
    except ValueError:
        raise ValueError(f"{text!r}: {host!r} is not an IP or CIDR; {_FORMS}") from None
    if digits == ANY_PORT:
        return AllowEntry(network, None)
    if not digits.isdigit() or not 0 < int(digits) < 65536:
        raise ValueError(f"{text!r}: the port must be 1 to 65535 or *; {_FORMS}")
    return AllowEntry(network, int(digits))


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
    """Public unicast: globally routable, not multicast, and embedding no private IPv4.

    The one test of "public": rule and account validation and the worker's resolver use it.
    """
    if isinstance(address, ipaddress.IPv6Address) and address in _MAPPED:
        return is_public(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    if not address.is_global or address.is_multicast:
        return False
    if isinstance(address, ipaddress.IPv6Address):
        if any(address in network for network in _NEVER_PUBLIC_V6):
            return False
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
    entry = f"[{address}]:{port}" if address.version == 6 else f"{address}:{port}"
    return (
        f"{address} is not a public unicast address{via}; to allow it, a platform admin adds "
        f"{entry} to DISPARO_TARGET_ALLOWLIST or to the account's target_allowlist"
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
