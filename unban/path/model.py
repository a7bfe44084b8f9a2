"""The values the path evaluator works with: the packet, the kernel lookups it may ask, and
where each way of the packet through one base chain ends. Pure code.

A *base chain* is a chain hooked into netfilter: an iptables table's built-in chain
(`filter INPUT`, ...) or an nft chain with `type filter hook input priority 0`. A new TCP SYN
to sshd passes every base chain of the hooks it meets (netdev ingress on its interface, then
prerouting, then input), each in priority order. An `accept` ends only that base chain; a
`drop` or `reject` anywhere ends the packet. So the packet gets in exactly when every base
chain on its way accepts it.
"""

from __future__ import annotations

import enum
import ipaddress
from dataclasses import dataclass
from typing import Optional, Protocol, Union

IPAddress = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]


class Match(enum.Enum):
    """A three-valued answer: does a condition hold for this packet?"""

    YES = "yes"
    NO = "no"
    MAYBE = "maybe"


# Hooks in the order a locally delivered packet meets them.
HOOKS = ("ingress", "prerouting", "input")

# Verdicts of one way through a base chain.
ACCEPT = "accept"
DROP = "drop"
REJECT = "reject"
UNKNOWN = "unknown"  # a queue, a NAT rewrite, an unevaluable target, too deep, too many ways
BLOCKING = (DROP, REJECT)


@dataclass(frozen=True)
class Packet:
    """The first packet of a new SSH connection: a TCP SYN from the client to sshd.

    `destination` None: the server address the client uses is not known (sshd listens on a
    wildcard address), so destination matches are "maybe". `in_interface` None: likewise for
    input-interface matches (`-i`, `iifname`), and netdev ingress chains are all "maybe".
    """

    source: IPAddress
    dport: int
    destination: Optional[IPAddress] = None
    in_interface: Optional[str] = None
    source_is_local: bool = False

    @property
    def version(self) -> int:
        return self.source.version


@dataclass(frozen=True)
class NftElement:
    """What an nft named set or map holds for one key.

    `found` None: the lookup failed (then the match is "maybe"). `element` is the key as nft
    prints the element that holds it (`203.0.113.4`, `203.0.113.0/24`, `203.0.113.4 . 22`);
    `value` a map's value for it (`drop`, `accept`, `jump deny`, `goto deny`), "" for a set.
    """

    found: Optional[bool]
    element: str = ""
    value: str = ""


class Lookups(Protocol):
    """Kernel state a rule can depend on, asked one key at a time (never a listing of a
    100k-element set). None: could not be read."""

    def ipset_member(self, name: str, address: str) -> Optional[bool]: ...

    def recent_member(self, name: str, address: str) -> Optional[bool]: ...

    def nft_element(self, family: str, table: str, name: str, key: str) -> NftElement:
        """`key` is the element key as nft's parser reads it: `203.0.113.4`, or for a
        concatenation `203.0.113.4 . 22` / `203.0.113.4 . tcp . 22`."""
        ...


class NoLookups:
    """Every membership is unknown: what a pure test, or a reader without root, has."""

    def ipset_member(self, name: str, address: str) -> Optional[bool]:
        return None

    def recent_member(self, name: str, address: str) -> Optional[bool]:
        return None

    def nft_element(self, family: str, table: str, name: str, key: str) -> NftElement:
        return NftElement(None)


@dataclass(frozen=True)
class SourceKey:
    """Something in a rule that picks out the client by its source address: the rule's own
    source value, an element of an nft set or map (named or anonymous), an ipset member, an
    xt_recent entry. It is what a lift can take away.

    kind: "address" (`-s NET`, `ip saddr NET`), "set" (an element of a named nft set or map),
    "anonymous" (an element of a set or map written inside the rule), "ipset", "recent".
    `value`: the network or element as the tool prints it (`203.0.113.4/32`,
    `203.0.113.0/24`, `203.0.113.4 . 22`, `203.0.113.4 : drop`). `name`: the set, map, ipset
    or list (empty for "address"). `targeted`: it holds the client's address and nothing else
    (for a concatenation: its address part is the client's address alone).
    """

    kind: str
    value: str
    targeted: bool
    name: str = ""


@dataclass(frozen=True)
class Hop:
    """A rule the packet matched on its way (or a chain policy: line 0 / handle None).

    backend: "legacy" or "nft" for iptables rules (their save text), "nftables" for native nft.
    family: ipv4/ipv6 for iptables; the nft table family (ip, ip6, inet, netdev) for nftables.
    `line` numbers an iptables rule as `iptables -L --line-numbers` does; `handle` is nft's.
    `rule` is the rule as `iptables -S` or `nft -a -s list` prints it (`-A INPUT -s ... -j X`,
    `ip saddr 203.0.113.4 drop`), or `-P INPUT DROP` / `policy drop` for a policy.
    `keys`: what in this rule matched the client by source (see SourceKey).
    """

    backend: str
    family: str
    table: str
    chain: str
    rule: str
    line: Optional[int] = None
    handle: Optional[int] = None
    keys: tuple[SourceKey, ...] = ()

    @property
    def is_policy(self) -> bool:
        return self.line in (None, 0) and self.handle is None

    def where(self) -> str:
        if self.backend == "nftables":
            base = f"nft {self.family} {self.table} {self.chain}"
            return f"{base} handle {self.handle}" if self.handle is not None else f"{base} policy"
        if self.is_policy:
            return f"{self.table} {self.chain} policy"
        return f"{self.table} {self.chain} #{self.line}"


@dataclass(frozen=True)
class Assumption:
    """A rule whose match could not be evaluated, and which way this path assumed it went."""

    hop: Hop
    matched: bool
    why: str


@dataclass(frozen=True)
class Outcome:
    """Where one possible way of the SYN through a base chain ends.

    `hop` is the rule (or policy) that decided. `path` is every rule that matched on the way
    there, in order, the deciding one last when it is a rule (jumps, gotos, vmap lookups,
    rules that matched and went on: log, counter, mark). `detail` says how it ended:
    "REJECT --reject-with tcp-reset", "policy DROP", "NFQUEUE: a userspace program decides".
    """

    verdict: str  # accept | drop | reject | unknown
    hop: Hop
    detail: str
    path: tuple[Hop, ...] = ()
    assumptions: tuple[Assumption, ...] = ()

    @property
    def blocking(self) -> bool:
        return self.verdict in BLOCKING


@dataclass(frozen=True)
class ChainWalk:
    """Every way the SYN can leave one base chain.

    `backend`: "legacy", "nft" (iptables-nft, read from its save text) or "nftables" (native).
    `family`: ipv4/ipv6 for iptables, the nft family for native tables. `hook` one of HOOKS;
    `priority` the netfilter priority (iptables: raw -300, mangle -150, nat -100, filter 0,
    security 50). `device`: a netdev ingress chain's interface.
    """

    backend: str
    family: str
    table: str
    chain: str
    hook: str
    priority: int
    outcomes: tuple[Outcome, ...]
    device: Optional[str] = None

    @property
    def verdict(self) -> str:
        """CLEAR, BLOCKS or MAY_BLOCK for this base chain alone."""
        if all(o.verdict == ACCEPT for o in self.outcomes):
            return CLEAR
        if all(o.blocking for o in self.outcomes):
            return BLOCKS
        return MAY_BLOCK

    def order(self) -> tuple[int, int]:
        return HOOKS.index(self.hook), self.priority


# Verdicts a person reads (doctor's, find's, me's last line).
BLOCKS = "blocks"
MAY_BLOCK = "may block"
CLEAR = "clear"
NOT_PRESENT = "not present"
