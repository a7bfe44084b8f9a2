"""Parsing and matching of client addresses. Pure code."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Optional, Union

from unban.errors import InputError, printable

Network = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]

# Narrower than this and a request is "an address or a small range"; wider is refused.
_MIN_PREFIX = {4: 8, 6: 16}
# The longest spelling of an address with a zone and a prefix is well under this.
MAX_LENGTH = 100


@dataclass(frozen=True)
class Embedding:
    """An IPv6 prefix whose addresses stand for IPv4 addresses (RFC 4291, 6052, 3056, 4380)."""

    prefix: ipaddress.IPv6Network
    name: str
    bits: tuple[tuple[int, int], ...]  # the IPv4 address's bit spans [start, end) in the IPv6 one


EMBEDDINGS = (
    Embedding(ipaddress.IPv6Network("::ffff:0:0/96"), "IPv4-mapped", ((96, 128),)),
    Embedding(ipaddress.IPv6Network("::/96"), "IPv4-compatible", ((96, 128),)),
    Embedding(ipaddress.IPv6Network("64:ff9b::/96"), "NAT64", ((96, 128),)),
    Embedding(ipaddress.IPv6Network("64:ff9b:1::/48"), "local NAT64", ((48, 64), (72, 88))),
    Embedding(ipaddress.IPv6Network("2002::/16"), "6to4", ((16, 48),)),
    Embedding(ipaddress.IPv6Network("2001::/32"), "Teredo", ((96, 128),)),
)


def ipv4_prefix(network: ipaddress.IPv6Network) -> Optional[tuple[int, str]]:
    """How many leading bits of an IPv4 address `network` fixes, when its addresses stand for
    IPv4 ones (and which embedding says so); 0 when it holds a whole embedding prefix, so it
    covers every IPv4 address. None when it has nothing to do with IPv4."""
    for embedding in EMBEDDINGS:
        if embedding.prefix.subnet_of(network):
            return 0, embedding.name
        if network.subnet_of(embedding.prefix):
            fixed = sum(
                max(0, min(network.prefixlen, end) - start) for start, end in embedding.bits
            )
            return fixed, embedding.name
    return None


def _decimal(text: str) -> Optional[int]:
    """A prefix length: one to three ASCII digits (str.isdigit also takes '٣٢' and '³')."""
    if 0 < len(text) <= 3 and text.isascii() and text.isdigit():
        return int(text)
    return None


def parse_target(text: str, *, min_prefix: Optional[Mapping[int, int]] = None) -> Network:
    """Parse ADDRESS as given on the command line: an IPv4/IPv6 address or CIDR.

    `::ffff:203.0.113.4` means 203.0.113.4. A zone index only makes sense on a link-local
    address, and firewall rules never carry one, so it is dropped there and refused elsewhere.
    Networks wider than `min_prefix` (default: /8 for IPv4, /16 for IPv6) are refused, and /0
    always; an IPv6 network whose addresses stand for IPv4 ones (NAT64, 6to4, ...) is measured
    by the IPv4 network it covers.
    """
    limits = _MIN_PREFIX if min_prefix is None else min_prefix
    shown = printable(text[:MAX_LENGTH] + ("..." if len(text) > MAX_LENGTH else ""))
    if len(text) > MAX_LENGTH:
        raise InputError(f"'{shown}' is not an address: longer than {MAX_LENGTH} characters")
    raw = text.strip()
    if not raw:
        raise InputError(
            "empty address: give an IPv4 or IPv6 address, or a CIDR such as 198.51.100.0/24"
        )
    if any(c.isspace() for c in raw):
        raise InputError(f"'{shown}' is not an address: it contains whitespace")
    if not raw.isascii() or not raw.isprintable():
        raise InputError(f"'{shown}' is not an address: only ASCII letters, digits, '.:/%[]'")
    return _parse(raw, shown, limits)


def _parse(raw: str, text: str, limits: Mapping[int, int]) -> Network:
    addr_part, slash, prefix_part = raw.partition("/")
    if addr_part.startswith("[") and addr_part.endswith("]"):
        addr_part = addr_part[1:-1]
    addr_part = _drop_zone(addr_part, text)
    try:
        address = ipaddress.ip_address(addr_part)
    except ValueError:
        raise InputError(f"'{text}' is not an IPv4 or IPv6 address") from None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
        if slash:
            prefix_part = _unmap_prefix(prefix_part, text)
    if not slash:
        return ipaddress.ip_network(address)
    prefix = _decimal(prefix_part)
    if prefix is None:
        raise InputError(f"'{text}': the prefix length after '/' must be a number (0 to 128)")
    if prefix > address.max_prefixlen:
        raise InputError(f"'{text}': prefix /{prefix} is longer than /{address.max_prefixlen}")
    if prefix == 0:
        raise InputError(f"'{text}': /0 is every address; give the client's address or its network")
    if prefix < limits[address.version]:
        raise InputError(
            f"'{text}': /{prefix} is wider than /{limits[address.version]}; "
            "that is not one client's network"
        )
    try:
        network = ipaddress.ip_network(f"{address}/{prefix}", strict=True)
    except ValueError:
        network = ipaddress.ip_network(f"{address}/{prefix}", strict=False)
        raise InputError(f"'{text}' has host bits set; did you mean {network}?") from None
    if isinstance(network, ipaddress.IPv6Network):
        _check_embedded(network, text, limits)
    return network


def _check_embedded(network: ipaddress.IPv6Network, text: str, limits: Mapping[int, int]) -> None:
    """An IPv6 network standing for IPv4 addresses is as wide as the IPv4 network it covers."""
    found = ipv4_prefix(network)
    if found is None:
        return
    fixed, name = found
    if fixed == 0:
        raise InputError(
            f"'{text}' holds every {name} address, so every IPv4 address; "
            "give the client's address or its network"
        )
    if fixed < limits[4]:
        raise InputError(
            f"'{text}' covers an IPv4 /{fixed} ({name}), wider than /{limits[4]}; "
            "that is not one client's network"
        )


def _drop_zone(addr: str, original: str) -> str:
    if "%" not in addr:
        return addr
    base, _, zone = addr.partition("%")
    if not zone:
        raise InputError(f"'{original}': empty zone index after '%'")
    try:
        parsed = ipaddress.IPv6Address(base)
    except ValueError:
        raise InputError(f"'{original}': a zone index only goes with an IPv6 address") from None
    if not parsed.is_link_local:
        raise InputError(
            f"'{original}': a zone index (%{zone}) only makes sense on a link-local fe80:: address"
        )
    return base


def _unmap_prefix(prefix_part: str, original: str) -> str:
    prefix = _decimal(prefix_part)
    if prefix is None or not 96 <= prefix <= 128:
        raise InputError(f"'{original}': an IPv4-mapped network needs a prefix of /96 to /128")
    return str(prefix - 96)


def parse_network(text: str) -> Network | None:
    """Parse a source network as a firewall prints it; None when it is not one."""
    try:
        network = ipaddress.ip_network(text, strict=False)
    except ValueError:
        return None
    if isinstance(network, ipaddress.IPv6Network) and network.network_address.ipv4_mapped:
        return None
    return network


def overlaps(rule_network: Network, target: Network) -> bool:
    """True when a rule on `rule_network` affects some address of `target`."""
    if rule_network.version != target.version:
        return False
    return rule_network.overlaps(target)


def is_targeted(rule_network: Network, target: Network) -> bool:
    """A rule is targeted when it covers nothing outside the target (a single host for an address)."""
    if rule_network.version != target.version:
        return False
    return rule_network.subnet_of(target)  # type: ignore[arg-type]


def show(network: Network) -> str:
    """A single host as a bare address, a network in CIDR form."""
    if network.prefixlen == network.max_prefixlen:
        return str(network.network_address)
    return str(network)


def family_of(network: Network) -> str:
    return "ipv4" if network.version == 4 else "ipv6"


def width(network: Network) -> tuple[int, int]:
    """(IP version, prefix length) of what `network` covers: an IPv6 network standing for IPv4
    addresses (`ipv4_prefix`) is measured as the IPv4 network it covers."""
    if isinstance(network, ipaddress.IPv6Network):
        found = ipv4_prefix(network)
        if found is not None:
            return 4, found[0]
    return network.version, network.prefixlen
