"""Parsing and matching of client addresses. Pure code."""

from __future__ import annotations

import ipaddress
from typing import Union

from unban.errors import InputError

Network = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]

# Narrower than this and a request is "an address or a small range"; wider is refused.
_MIN_PREFIX = {4: 8, 6: 16}


def parse_target(text: str) -> Network:
    """Parse ADDRESS as given on the command line: an IPv4/IPv6 address or CIDR.

    `::ffff:203.0.113.4` means 203.0.113.4. A zone index only makes sense on a link-local
    address, and firewall rules never carry one, so it is dropped there and refused elsewhere.
    """
    raw = text.strip()
    if not raw:
        raise InputError(
            "empty address: give an IPv4 or IPv6 address, or a CIDR such as 198.51.100.0/24"
        )
    if any(c.isspace() for c in raw):
        raise InputError(f"'{text}' is not an address: it contains whitespace")
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
    if not prefix_part.isdigit():
        raise InputError(f"'{text}': the prefix length after '/' must be a number")
    prefix = int(prefix_part)
    if prefix > address.max_prefixlen:
        raise InputError(f"'{text}': prefix /{prefix} is longer than /{address.max_prefixlen}")
    if prefix == 0:
        raise InputError(f"'{text}': /0 is every address; give the client's address or its network")
    if prefix < _MIN_PREFIX[address.version]:
        raise InputError(
            f"'{text}': /{prefix} is wider than /{_MIN_PREFIX[address.version]}; "
            "that is not one client's network"
        )
    try:
        return ipaddress.ip_network(f"{address}/{prefix}", strict=True)
    except ValueError:
        network = ipaddress.ip_network(f"{address}/{prefix}", strict=False)
        raise InputError(f"'{text}' has host bits set; did you mean {network}?") from None


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
    if not prefix_part.isdigit() or int(prefix_part) < 96:
        raise InputError(f"'{original}': an IPv4-mapped network needs a prefix of /96 to /128")
    return str(int(prefix_part) - 96)


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
