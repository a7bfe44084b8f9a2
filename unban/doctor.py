"""`unban doctor ADDRESS`: every reason sshd may refuse ADDRESS, most likely first.

Each check gives a verdict (blocks / may block / clear / not present), its evidence and the
command that fixes it. The checks follow a new connection's way in: fail2ban's bans, the packet
filters (which rule the client's TCP SYN meets first), native nftables and routes, sshd's
ListenAddress/Port, TCP wrappers (hosts.allow / hosts.deny), MaxStartups against the
unauthenticated connections waiting now, PerSourcePenalties, then who may log in (AllowUsers,
DenyUsers, ...), and the log lines about ADDRESS.

The evaluation is pure (everything above `# ---- reading the system`): it takes parsed rulesets,
sshd's effective config, the socket table and log lines, so tests feed it without a system.
What it cannot evaluate (a `-m limit` match, a host name it did not look up) makes a check
"may block"; it never guesses.

Unauthenticated connections ("startups"): sshd's listener keeps the count in its process title
(`sshd: ... [listener] 3 of 10-100 startups`, OpenSSH 8.2+), which is exactly the number
MaxStartups is compared with; that is read first. Without it, they are counted from the kernel's
socket table (`ss -tnp state established` on sshd's port): a connection is unauthenticated while
every sshd process holding it is still a pre-authentication one (title `[accepted]`, `[net]` or
`[preauth]`); once a user has logged in its processes are `[priv]` and `user@tty`.
"""

from __future__ import annotations

import datetime
import io
import ipaddress
import os
import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Optional, Protocol, Union

from unban import sshd as sshd_mod
from unban import tcpwrappers
from unban.address import Network, parse_target, show
from unban.errors import InputError, LayerError, UnbanError
from unban.hostsedit import client_pattern
from unban.layers import Layer, owner_of
from unban.layers.xtables import (
    BACKENDS,
    Ruleset,
    Table,
    XtablesLayer,
    display_tool,
    split_spec,
    tool,
)
from unban.model import Finding
from unban.sshd import SshdConfig, UserAccess, in_exempt_list, listens_for
from unban.system import run, which
from unban.tcpwrappers import Decision, EntryMatch, Match

BLOCKS = "blocks"
MAY_BLOCK = "may block"
CLEAR = "clear"
NOT_PRESENT = "not present"
VERDICT_RANK = {BLOCKS: 0, MAY_BLOCK: 1, CLEAR: 2, NOT_PRESENT: 3}

IPAddress = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]

# What the client sees for each way of refusing it (measured: ../shared/field-notes.md).
SEES_TIMEOUT = "ssh: connect to host ... port 22: Connection timed out"
SEES_REFUSED = "ssh: connect to host ... port 22: Connection refused"
SEES_UNREACHABLE = "ssh: connect to host ... port 22: No route to host"
SEES_RESET = "kex_exchange_identification: read: Connection reset by peer"
SEES_DENIED = "Permission denied (publickey,password)"


# ---------------------------------------------------------------- the packet path (pure)


@dataclass(frozen=True)
class Packet:
    """The first packet of a new SSH connection: a TCP SYN from the client to sshd.

    `destination` None: the server address the client uses is not known (sshd listens on a
    wildcard address), so `-d` matches are "maybe". `in_interface` None: likewise for `-i`.
    """

    source: IPAddress
    dport: int
    destination: Optional[IPAddress] = None
    in_interface: Optional[str] = None
    source_is_local: bool = False


class Lookups(Protocol):
    """Kernel state a rule can depend on. None: could not be read."""

    def set_member(self, name: str, address: str) -> Optional[bool]: ...

    def recent_member(self, name: str, address: str) -> Optional[bool]: ...


class NoLookups:
    """Every set and recent-list membership is unknown."""

    def set_member(self, name: str, address: str) -> Optional[bool]:
        return None

    def recent_member(self, name: str, address: str) -> Optional[bool]:
        return None


@dataclass(frozen=True)
class PathRule:
    """A rule (line >= 1, numbered as `iptables -L --line-numbers`) or a chain policy (line 0)."""

    backend: str
    family: str
    table: str
    chain: str
    line: int
    rule: str  # `-A CHAIN spec` as iptables -S prints it, or `-P CHAIN POLICY`

    def where(self) -> str:
        if self.line == 0:
            return f"{self.table} {self.chain} policy"
        return f"{self.table} {self.chain} #{self.line}"


@dataclass(frozen=True)
class Assumption:
    """A rule whose match could not be evaluated, and which way this path assumed it went."""

    ref: PathRule
    matched: bool
    why: str


@dataclass(frozen=True)
class Outcome:
    """Where one possible path of the SYN through a table ends."""

    verdict: str  # accept | drop | reject | unknown
    ref: PathRule
    detail: str  # "REJECT --reject-with tcp-reset", "NFQUEUE: a program decides", ...
    jumps: tuple[PathRule, ...] = ()  # the -j/-g rules taken to get there
    assumptions: tuple[Assumption, ...] = ()

    @property
    def blocking(self) -> bool:
        return self.verdict in ("drop", "reject")


@dataclass(frozen=True)
class TableWalk:
    table: str
    chain: str
    outcomes: tuple[Outcome, ...]

    @property
    def verdict(self) -> str:
        if all(o.verdict == "accept" for o in self.outcomes):
            return CLEAR
        if all(o.blocking for o in self.outcomes):
            return BLOCKS
        return MAY_BLOCK


@dataclass(frozen=True)
class Walk:
    """The SYN's way through one backend and family: raw, mangle, nat, filter, security."""

    backend: str
    family: str
    tables: tuple[TableWalk, ...]

    @property
    def verdict(self) -> str:
        if not self.tables:
            return NOT_PRESENT
        verdicts = [t.verdict for t in self.tables]
        if BLOCKS in verdicts:
            return BLOCKS
        return MAY_BLOCK if MAY_BLOCK in verdicts else CLEAR

    def deciding(self) -> list[Outcome]:
        """The outcomes that matter, in the order the SYN meets them: every blocking or unknown
        one up to (and including) the table that surely blocks; the accepting one otherwise."""
        result: list[Outcome] = []
        for table in self.tables:
            if table.verdict == CLEAR:
                continue
            result.extend(o for o in table.outcomes if o.verdict != "accept")
            if table.verdict == BLOCKS:
                return result
        if not result:
            for table in self.tables:
                if table.table == "filter":
                    return list(table.outcomes[:1])
            return [self.tables[-1].outcomes[0]] if self.tables else []
        return result


# The tables a locally delivered packet passes, in order (netfilter priorities).
HOOK_PATH = (
    ("raw", "PREROUTING"),
    ("mangle", "PREROUTING"),
    ("nat", "PREROUTING"),
    ("mangle", "INPUT"),
    ("filter", "INPUT"),
    ("security", "INPUT"),
)

_NON_TERMINAL_TARGETS = frozenset(
    """LOG NFLOG ULOG MARK CONNMARK CT NOTRACK TRACE AUDIT CLASSIFY TCPMSS DSCP TOS TTL HL SET
    SECMARK CONNSECMARK CHECKSUM IDLETIMER LED TEE RATEEST HMARK""".split()
)
_UNKNOWN_TARGETS = {
    "NFQUEUE": "a userspace program decides (NFQUEUE)",
    "QUEUE": "a userspace program decides (QUEUE)",
    "DNAT": "the destination is rewritten (DNAT)",
    "REDIRECT": "the destination port is rewritten (REDIRECT)",
    "NETMAP": "the destination is rewritten (NETMAP)",
    "SYNPROXY": "SYNPROXY answers the SYN itself",
}
_MAX_OUTCOMES = 256
_MAX_DEPTH = 64


def walk_ruleset(ruleset: Ruleset, packet: Packet, lookups: Lookups) -> Walk:
    """Follow the SYN through every table of the hook path that this ruleset has."""
    tables = []
    for table_name, chain in HOOK_PATH:
        table = ruleset.tables.get(table_name)
        if table is None or chain not in table.chains:
            continue
        outcomes = walk_chain(ruleset, table, chain, packet, lookups)
        tables.append(TableWalk(table_name, chain, tuple(outcomes)))
    return Walk(ruleset.backend, ruleset.family, tuple(tables))


def walk_chain(
    ruleset: Ruleset, table: Table, start: str, packet: Packet, lookups: Lookups
) -> list[Outcome]:
    """Every way the SYN can leave built-in chain `start`, branching at unevaluable matches."""
    outcomes: list[Outcome] = []

    def ref(chain: str, index: int) -> PathRule:
        spec = table.chains[chain].rules[index]
        return PathRule(
            ruleset.backend, ruleset.family, table.name, chain, index + 1, f"-A {chain} {spec}"
        )

    def policy() -> Outcome:
        verdict = table.chains[start].policy.upper()
        policy_ref = PathRule(
            ruleset.backend, ruleset.family, table.name, start, 0, f"-P {start} {verdict}"
        )
        return Outcome("accept" if verdict == "ACCEPT" else "drop", policy_ref, f"policy {verdict}")

    # A path state: chain, rule index, return stack, jumps taken, assumptions made. The path
    # where an unknown match is assumed to match goes on first, so outcomes come out in the
    # order the SYN meets them; the other branch waits in `pending`.
    State = tuple[
        str, int, tuple[tuple[str, int], ...], tuple[PathRule, ...], tuple[Assumption, ...]
    ]
    pending: list[State] = [(start, 0, (), (), ())]
    while pending:
        chain, index, stack, jumps, assumed = pending.pop(0)
        while True:
            if len(outcomes) >= _MAX_OUTCOMES:
                outcomes.append(replace(policy(), verdict="unknown", detail="too many paths"))
                pending.clear()
                break
            rules = table.chains[chain].rules
            if index >= len(rules):
                kind = "return"  # the end of a chain is an implicit RETURN
            else:
                tokens = split_spec(rules[index])
                result, why = match_rule(tokens, packet, lookups)
                if result is Match.NO:
                    index += 1
                    continue
                kind, target, detail = classify_target(tokens, table)
                if kind == "continue":  # LOG, MARK, ...: the same either way
                    index += 1
                    continue
                here = ref(chain, index)
                if result is Match.MAYBE:
                    skipped = (*assumed, Assumption(here, False, why))
                    pending.append((chain, index + 1, stack, jumps, skipped))
                    assumed = (*assumed, Assumption(here, True, why))
            if kind == "return":  # back to the calling chain, or the built-in chain's policy
                if not stack:
                    outcomes.append(replace(policy(), jumps=jumps, assumptions=assumed))
                    break
                chain, index = stack[-1]
                stack = stack[:-1]
                continue
            if kind in ("accept", "drop", "reject", "unknown"):
                outcomes.append(Outcome(kind, here, detail, jumps, assumed))
                break
            if len(stack) >= _MAX_DEPTH:
                outcomes.append(Outcome("unknown", here, "chains nest too deep", jumps, assumed))
                break
            if kind == "jump":
                stack = (*stack, (chain, index + 1))
            jumps = (*jumps, here)
            chain, index = target, 0
    return outcomes


def classify_target(tokens: Sequence[str], table: Table) -> tuple[str, str, str]:
    """(kind, target, detail): kind is accept/drop/reject/return/jump/goto/continue/unknown."""
    for i, token in enumerate(tokens[:-1]):
        if token in ("-j", "--jump", "-g", "--goto"):
            target = tokens[i + 1]
            options = " ".join(tokens[i + 2 :])
            detail = f"{target} {options}".strip()
            if token in ("-g", "--goto"):
                return (
                    ("goto", target, detail)
                    if target in table.chains
                    else (
                        "unknown",
                        target,
                        f"goto to a missing chain {target}",
                    )
                )
            if target == "ACCEPT":
                return "accept", target, detail
            if target in ("DROP", "TARPIT"):
                return "drop", target, detail
            if target == "REJECT":
                if "--reject-with" not in tokens:
                    detail = "REJECT --reject-with icmp-port-unreachable"
                return "reject", target, detail
            if target == "RETURN":
                return "return", target, detail
            if target in table.chains:
                return "jump", target, detail
            if target in _NON_TERMINAL_TARGETS:
                return "continue", target, detail
            reason = _UNKNOWN_TARGETS.get(target, f"target {target} is not evaluated here")
            return "unknown", target, f"{detail}: {reason}"
    return "continue", "", ""


def client_sees(outcome: Outcome) -> str:
    if outcome.verdict == "drop":
        return SEES_TIMEOUT
    if outcome.verdict == "reject":
        kind = (
            outcome.detail.split("--reject-with", 1)[-1].split()[0]
            if "--reject-with" in (outcome.detail)
            else "icmp-port-unreachable"
        )
        if kind in ("tcp-reset", "icmp-port-unreachable", "icmp6-port-unreachable"):
            return SEES_REFUSED
        return SEES_UNREACHABLE
    return ""


# -- matches


# Options whose value count is known; any other `--option` takes the words up to the next one.
_ARITY = {
    "--dport": 1, "--destination-port": 1, "--sport": 1, "--source-port": 1,
    "--dports": 1, "--destination-ports": 1, "--sports": 1, "--source-ports": 1, "--ports": 1,
    "--syn": 0, "--tcp-flags": 2, "--tcp-option": 1,
    "--ctstate": 1, "--state": 1, "--ctproto": 1, "--ctorigsrc": 1, "--ctorigdst": 1,
    "--ctreplsrc": 1, "--ctrepldst": 1, "--ctorigsrcport": 1, "--ctorigdstport": 1,
    "--ctreplsrcport": 1, "--ctrepldstport": 1, "--ctstatus": 1, "--ctexpire": 1, "--ctdir": 1,
    "--match-set": 2, "--update-counters": 0, "--update-subcounters": 0, "--return-nomatch": 0,
    "--name": 1, "--rsource": 0, "--rdest": 0, "--mask": 1, "--set": 0, "--rcheck": 0,
    "--update": 0, "--remove": 0, "--seconds": 1, "--hitcount": 1, "--rttl": 0, "--reap": 0,
    "--src-type": 1, "--dst-type": 1, "--limit-iface-in": 0, "--limit-iface-out": 0,
    "--src-range": 1, "--dst-range": 1, "--comment": 1, "--pkt-type": 1,
}  # fmt: skip
_EVALUATED_MODULES = frozenset(
    {"tcp", "multiport", "conntrack", "state", "set", "recent", "addrtype", "iprange", "comment",
     "pkttype", "udp", "icmp", "icmp6", "ipv6header"}
)  # fmt: skip


@dataclass
class _Option:
    name: str
    values: list[str]
    negated: bool


def parse_matches(tokens: Sequence[str]) -> tuple[list[_Option], list[tuple[str, list[_Option]]]]:
    """Split a rule's matches into base options (-s, -p, ...) and per-module option lists."""
    base: list[_Option] = []
    modules: list[tuple[str, list[_Option]]] = []
    negate = False
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token == "!":
            negate = True
            i += 1
            continue
        if token in ("-j", "--jump", "-g", "--goto"):
            break
        if token in ("-m", "--match"):
            modules.append((tokens[i + 1] if i + 1 < len(tokens) else "", []))
            i += 2
            negate = False
            continue
        if token.startswith("--"):
            arity = _ARITY.get(token)
            j = i + 1
            if arity is None:
                while j < len(tokens) and not tokens[j].startswith("-") and tokens[j] != "!":
                    j += 1
            else:
                j = i + 1 + arity
            option = _Option(token, list(tokens[i + 1 : j]), negate)
            if modules:
                modules[-1][1].append(option)
            else:
                base.append(option)
            i = j
        elif token.startswith("-"):
            flag_only = token in ("-f", "--fragment")
            values = [] if flag_only else list(tokens[i + 1 : i + 2])
            base.append(_Option(token, values, negate))
            i += 1 if flag_only else 2
        else:
            i += 1
        negate = False
    return base, modules


def match_rule(tokens: Sequence[str], packet: Packet, lookups: Lookups) -> tuple[Match, str]:
    """Does the SYN match every condition of the rule? MAYBE with the reason when unknown."""
    base, modules = parse_matches(tokens)
    reasons: list[str] = []
    result = Match.YES
    for option in base:
        value = _base_match(option, packet)
        result = _and(result, _negate(value[0], option.negated))
        if value[0] is Match.MAYBE:
            reasons.append(value[1])
        if result is Match.NO:
            return Match.NO, ""
    for name, options in modules:
        value = _module_match(name, options, packet, lookups)
        result = _and(result, value[0])
        if value[0] is Match.MAYBE:
            reasons.append(value[1])
        if result is Match.NO:
            return Match.NO, ""
    return result, "; ".join(reasons)


def _base_match(option: _Option, packet: Packet) -> tuple[Match, str]:
    name, value = option.name, option.values[0] if option.values else ""
    if name in ("-s", "--source"):
        return _in_network(packet.source, value), ""
    if name in ("-d", "--destination"):
        if packet.destination is None:
            return Match.MAYBE, f"-d {value}: the server address the client uses is not known"
        return _in_network(packet.destination, value), ""
    if name in ("-p", "--protocol"):
        return _bool(value.lower() in ("tcp", "6", "all", "0")), ""
    if name in ("-i", "--in-interface"):
        if packet.in_interface is None:
            return (
                Match.MAYBE,
                f"-i {value}: the interface the client's packets arrive on is not known",
            )
        return _bool(_interface_match(value, packet.in_interface)), ""
    if name in ("-o", "--out-interface"):
        return Match.MAYBE, f"-o {value} on an incoming packet"
    if name in ("-f", "--fragment"):
        return Match.NO, ""
    return Match.MAYBE, f"{name} {value} is not evaluated here"


def _module_match(
    name: str, options: list[_Option], packet: Packet, lookups: Lookups
) -> tuple[Match, str]:
    if name == "recent":
        return _recent_match(options, packet, lookups)
    if name not in _EVALUATED_MODULES:
        return Match.MAYBE, f"-m {name} is not evaluated here (state, rates or packet contents)"
    result = Match.YES
    reasons = []
    for option in options:
        value, why = _module_option(name, option, packet, lookups)
        value = _negate(value, option.negated)
        if value is Match.MAYBE:
            reasons.append(why)
        result = _and(result, value)
        if result is Match.NO:
            return Match.NO, ""
    return result, "; ".join(reasons)


def _module_option(
    name: str, option: _Option, packet: Packet, lookups: Lookups
) -> tuple[Match, str]:
    opt, values = option.name, option.values
    first = values[0] if values else ""
    if name in ("udp", "icmp", "icmp6"):
        return Match.NO, ""
    if opt in ("--dport", "--destination-port"):
        return _bool(_port_in(packet.dport, first)), ""
    if opt in ("--dports", "--destination-ports"):
        return _bool(any(_port_in(packet.dport, p) for p in first.split(","))), ""
    if opt in ("--sport", "--source-port", "--sports", "--source-ports"):
        if all(_covers_all_ports(p) for p in first.split(",")):
            return Match.YES, ""
        return Match.MAYBE, f"{opt} {first}: the client's source port is not known"
    if opt == "--ports":
        if any(_port_in(packet.dport, p) for p in first.split(",")):
            return Match.YES, ""
        return Match.MAYBE, f"--ports {first}: the client's source port is not known"
    if opt == "--syn":
        return Match.YES, ""
    if opt == "--tcp-flags" and len(values) == 2:
        mask, compare = _flags(values[0]), _flags(values[1])
        return _bool(({"SYN"} & mask) == compare), ""
    if opt in ("--ctstate", "--state"):
        states = {s.upper() for s in first.split(",")}
        if "NEW" in states:
            return Match.YES, ""
        if states & {"DNAT", "SNAT"}:
            return Match.MAYBE, f"{opt} {first}: depends on NAT"
        return Match.NO, ""
    if opt == "--ctproto":
        return _bool(first.lower() in ("tcp", "6", "all")), ""
    if opt == "--ctorigsrc":
        return _in_network(packet.source, first), ""
    if opt == "--ctdir":
        return _bool(first.upper() == "ORIGINAL"), ""
    if opt == "--match-set" and len(values) == 2:
        set_name, flags = values
        if "," in flags:
            return Match.MAYBE, f"--match-set {set_name} {flags}: a set of several dimensions"
        address = packet.source if flags == "src" else packet.destination
        if address is None:
            return Match.MAYBE, f"--match-set {set_name} {flags}: the server address is not known"
        member = lookups.set_member(set_name, str(address))
        if member is None:
            return Match.MAYBE, f"membership of {address} in ipset {set_name} could not be tested"
        return _bool(member), ""
    if opt in ("--update-counters", "--update-subcounters", "--comment"):
        return Match.YES, ""
    if opt == "--return-nomatch":
        return Match.MAYBE, "--return-nomatch"
    if opt in ("--dst-type", "--src-type"):
        types = {t.upper() for t in first.split(",")}
        if opt == "--dst-type":
            return _bool("LOCAL" in types), ""
        local = packet.source_is_local
        return _bool(("LOCAL" in types) if local else bool(types & {"UNICAST"})), ""
    if opt in ("--limit-iface-in", "--limit-iface-out"):
        return Match.YES, ""
    if opt == "--src-range":
        return _bool(_in_range(packet.source, first)), ""
    if opt == "--dst-range":
        if packet.destination is None:
            return Match.MAYBE, f"--dst-range {first}: the server address is not known"
        return _bool(_in_range(packet.destination, first)), ""
    if opt == "--pkt-type":
        return _bool(first.lower() == "unicast"), ""
    return Match.MAYBE, f"-m {name} {opt} {' '.join(values)} is not evaluated here"


def _recent_match(options: list[_Option], packet: Packet, lookups: Lookups) -> tuple[Match, str]:
    names = {o.name for o in options}
    list_name = next((o.values[0] for o in options if o.name == "--name" and o.values), "DEFAULT")
    negated = any(
        o.negated for o in options if o.name in ("--set", "--rcheck", "--update", "--remove")
    )
    if "--rdest" in names:
        return Match.MAYBE, f"-m recent --name {list_name} --rdest"
    mask = next((o.values[0] for o in options if o.name == "--mask" and o.values), None)
    if mask not in (None, "255.255.255.255", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"):
        return Match.MAYBE, f"-m recent --name {list_name} --mask {mask}"
    if "--set" in names:
        return _negate(Match.YES, negated), ""
    member = lookups.recent_member(list_name, str(packet.source))
    if member is None:
        return Match.MAYBE, f"xt_recent list {list_name} could not be read"
    if not member:
        return _negate(Match.NO, negated), ""
    if names & {"--seconds", "--hitcount", "--rttl"} and names & {"--rcheck", "--update"}:
        return Match.MAYBE, (
            f"{packet.source} is in xt_recent list {list_name}; whether it is recent or frequent "
            "enough (--seconds/--hitcount) is not evaluated here"
        )
    return _negate(Match.YES, negated), ""


def _in_network(address: IPAddress, text: str) -> Match:
    try:
        network = ipaddress.ip_network(text, strict=False)
    except ValueError:
        return Match.MAYBE
    if network.version != address.version:
        return Match.NO
    return _bool(address in network)


def _in_range(address: IPAddress, text: str) -> bool:
    low, _, high = text.partition("-")
    try:
        first, last = ipaddress.ip_address(low), ipaddress.ip_address(high or low)
    except ValueError:
        return False
    return first.version == address.version and int(first) <= int(address) <= int(last)


def _interface_match(pattern: str, name: str) -> bool:
    if pattern.endswith("+"):
        return name.startswith(pattern[:-1])
    return pattern == name


def _port_in(port: int, spec: str) -> bool:
    low, colon, high = spec.partition(":")
    try:
        start = int(low) if low else 0
        end = (int(high) if high else 65535) if colon else start
    except ValueError:
        return False
    return start <= port <= end


def _covers_all_ports(spec: str) -> bool:
    return _port_in(0, spec) and _port_in(65535, spec) and ":" in spec


def _flags(text: str) -> set[str]:
    flags = {f.upper() for f in text.split(",")}
    if "ALL" in flags:
        return {"FIN", "SYN", "RST", "PSH", "ACK", "URG"}
    if "NONE" in flags:
        return set()
    return flags


def _bool(value: bool) -> Match:
    return Match.YES if value else Match.NO


def _negate(value: Match, negated: bool) -> Match:
    if not negated or value is Match.MAYBE:
        return value
    return Match.NO if value is Match.YES else Match.YES


def _and(a: Match, b: Match) -> Match:
    if Match.NO in (a, b):
        return Match.NO
    return Match.YES if a is b is Match.YES else Match.MAYBE


# ---------------------------------------------------------------- checks (pure)


@dataclass(frozen=True)
class Check:
    """One possible cause, judged.

    `key` is stable (scripts and `--json` readers can rely on it): fail2ban, iptables,
    nftables, route, listen, tcpwrappers, maxstartups, penalties, users, logs, sshd.
    `data` holds the machine-readable details (rule references, file and line).
    """

    key: str
    title: str
    verdict: str
    summary: str
    evidence: tuple[str, ...] = ()
    fix: tuple[str, ...] = ()
    client_sees: str = ""
    data: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)


# The order a new connection meets the causes in; among equal verdicts, earlier comes first.
CHECK_ORDER = (
    "fail2ban",
    "iptables",
    "nftables",
    "route",
    "listen",
    "tcpwrappers",
    "maxstartups",
    "penalties",
    "sshd",
    "users",
    "logs",
)


def ordered(checks: Sequence[Check]) -> list[Check]:
    """Most likely cause first: blocks, may block, clear, not present; then by path order."""
    position = {key: i for i, key in enumerate(CHECK_ORDER)}
    indexed = list(enumerate(checks))
    indexed.sort(
        key=lambda item: (
            VERDICT_RANK[item[1].verdict],
            position.get(item[1].key, len(CHECK_ORDER)),
            item[0],
        )
    )
    return [check for _i, check in indexed]


@dataclass(frozen=True)
class Diagnosis:
    address: str
    port: int
    user: Optional[str]
    server_address: Optional[str]
    checks: tuple[Check, ...]
    notes: tuple[str, ...] = ()

    @property
    def verdict(self) -> str:
        verdicts = {c.verdict for c in self.checks}
        if BLOCKS in verdicts:
            return BLOCKS
        return MAY_BLOCK if MAY_BLOCK in verdicts else CLEAR

    @property
    def cause(self) -> Optional[Check]:
        """The most likely cause, when something blocks or may block."""
        first = self.checks[0] if self.checks else None
        return first if first is not None and first.verdict in (BLOCKS, MAY_BLOCK) else None


def firewall_check(walk: Walk, address: str, port: int, tool_present: bool = True) -> Check:
    """The packet-filter verdict of one iptables backend and family."""
    tool = display_tool(walk.backend, walk.family)
    title = f"{tool} ({'IPv4' if walk.family == 'ipv4' else 'IPv6'})"
    if not tool_present:
        return Check("iptables", title, NOT_PRESENT, f"{tool}-save is not installed")
    verdict = walk.verdict
    if verdict == NOT_PRESENT:
        return Check("iptables", title, NOT_PRESENT, f"no {walk.backend} tables are loaded")
    deciding = walk.deciding()
    data = {"backend": walk.backend, "family": walk.family, "outcomes": deciding}
    evidence: list[str] = []
    for outcome in deciding:
        evidence.extend(_outcome_lines(outcome))
    syn = f"a TCP SYN from {address} to port {port}"
    first = deciding[0] if deciding else None
    if verdict == CLEAR:
        where = f"{first.ref.where()}: {first.ref.rule}" if first else "every table's policy"
        return Check(
            "iptables", title, CLEAR, f"{syn} is accepted ({where})", tuple(evidence), data=data
        )
    blocking = [o for o in deciding if o.blocking]
    fixes: list[str] = []
    for outcome in blocking or deciding:
        for line in _firewall_fixes(outcome, address, port):
            if line not in fixes:
                fixes.append(line)
    assert first is not None
    sees = next((client_sees(o) for o in blocking), "")
    if verdict == BLOCKS and len(blocking) == 1:
        summary = f"{syn} meets {first.ref.where()} first: {first.ref.rule} ({first.detail})"
    elif verdict == BLOCKS:
        summary = (
            f"{syn} is stopped whichever way the unknown matches go; first at {first.ref.where()}: "
            f"{first.ref.rule} ({first.detail})"
        )
    else:
        summary = f"{syn} may be stopped at {first.ref.where()}: {first.ref.rule}"
    return Check("iptables", title, verdict, summary, tuple(evidence), tuple(fixes), sees, data)


def _outcome_lines(outcome: Outcome) -> list[str]:
    lines = []
    via = " -> ".join(f"{j.where()} ({j.rule})" for j in outcome.jumps)
    verdict = {"accept": "ACCEPT", "drop": "DROP", "reject": "REJECT"}.get(outcome.verdict, "?")
    lines.append(f"{outcome.ref.where()}: {outcome.ref.rule}  => {verdict} ({outcome.detail})")
    if via:
        lines.append(f"  reached through {via}")
    for assumption in outcome.assumptions:
        way = "matches" if assumption.matched else "does not match"
        lines.append(f"  if {assumption.ref.where()} {way} ({assumption.why})")
    return lines


def _firewall_fixes(outcome: Outcome, address: str, port: int) -> list[str]:
    ref = outcome.ref
    tool = display_tool(ref.backend, ref.family)
    owner = owner_of(ref.chain)
    tokens = split_spec(ref.rule)
    fixes = []
    if owner.startswith("fail2ban:"):
        fixes.append(f"fail2ban-client set {owner.split(':', 1)[1]} unbanip {address}")
    source = _option(tokens, "-s")
    match_set = _option(tokens, "--match-set")
    recent = "-m" in tokens and "recent" in tokens
    start = next((chain for table, chain in HOOK_PATH if table == ref.table), "INPUT")
    accept = f"{tool} -t {ref.table} -I {start} 1 -s {address} -p tcp --dport {port} -j ACCEPT"
    address_ip = ipaddress.ip_address(address)
    if ref.line and source is not None and _in_network(address_ip, source) is Match.YES:
        six = " -6" if ref.family == "ipv6" else ""
        delete = (
            f"unban delete {ref.chain} {ref.line} -t {ref.table} --backend {ref.backend}{six} "
            f"--expect {address}"
        )
        network = ipaddress.ip_network(source, strict=False)
        if network.prefixlen == network.max_prefixlen:
            fixes += [delete, f"{tool} -t {ref.table} -D {ref.chain} {ref.line}"]
        else:  # the rule covers a whole network: let this address through instead
            fixes += [accept, f"{delete}  (removes the rule for all of {network})"]
    elif match_set is not None:
        fixes.append(f"ipset del {match_set} {address}")
    elif recent:
        name = _option(tokens, "--name") or "DEFAULT"
        fixes.append(f"echo -{address} > /proc/net/xt_recent/{name}")
    else:
        fixes.append(accept)
    return fixes


def _option(tokens: Sequence[str], name: str) -> Optional[str]:
    for i, token in enumerate(tokens[:-1]):
        if token == name and (i == 0 or tokens[i - 1] != "!"):
            return tokens[i + 1]
    return None


@dataclass(frozen=True)
class LayerResult:
    """What one engine layer (fail2ban, nftables, route) said about the address."""

    name: str
    present: bool
    detail: str
    findings: tuple[Finding, ...] = ()
    fixes: tuple[str, ...] = ()
    error: str = ""


def _layer_unread_or_clear(
    result: LayerResult,
    key: str,
    title: str,
    tool: str,
    clear: str,
    evidence: tuple[str, ...] = (),
) -> Optional[Check]:
    """The check of a layer that could not be read, is not here, or found nothing (`clear`
    says so); None when it has findings."""
    if result.error:
        return Check(key, title, MAY_BLOCK, f"{title} could not be read: {result.error}")
    if not result.present:
        return Check(key, title, NOT_PRESENT, result.detail or f"{tool} is not installed")
    if not result.findings:
        return Check(key, title, CLEAR, clear, evidence)
    return None


def fail2ban_check(result: LayerResult, address: str) -> Check:
    title = "fail2ban"
    early = _layer_unread_or_clear(
        result,
        "fail2ban",
        title,
        "fail2ban",
        f"no fail2ban jail has {address} banned",
        (result.detail,),
    )
    if early is not None:
        return early
    jails = sorted({f.owner.split(":", 1)[-1] for f in result.findings})
    stored = all(f.backend == "database" for f in result.findings)
    evidence = [f"{f.owner}: {f.rule}" for f in result.findings]
    fixes = list(result.fixes)
    if stored:
        summary = (
            f"fail2ban is stopped, but its database bans {address} in {', '.join(jails)}: "
            "it bans it again when it starts"
        )
        verdict = MAY_BLOCK
    else:
        summary = f"fail2ban has {address} banned in jail {', '.join(jails)}"
        verdict = BLOCKS
        if not any("unbanip" in fix for fix in fixes):  # the layer's own, with its -c, first
            fixes[:0] = [f"fail2ban-client set {jail} unbanip {address}" for jail in jails]
    return Check(
        "fail2ban",
        title,
        verdict,
        summary,
        tuple(evidence),
        tuple(fixes),
        "depends on the ban action (a REJECT rule: Connection refused; hostsdeny: reset)",
        {"findings": list(result.findings)},
    )


def nftables_check(result: LayerResult, address: str, port: int) -> Check:
    title = "nftables"
    early = _layer_unread_or_clear(
        result, "nftables", title, "nft", f"no native nftables rule or set drops {address}"
    )
    if early is not None:
        return early
    evidence = []
    verdict = MAY_BLOCK
    for finding in result.findings:
        evidence.append(f"{finding.location()}: {finding.rule}")
        if finding.element:
            evidence.append(f"  element {finding.element} of set {finding.set_name}")
        # The rule's hook and other conditions are not evaluated; a rule that names another
        # destination port only may block.
        ports = re.findall(r"dport\s+(\{[^}]*\}|\S+)", finding.rule)
        if not ports or any(str(port) in p or "-" in p for p in ports):
            verdict = BLOCKS
    first = result.findings[0]
    summary = f"{first.location()} drops {address}: {first.rule}"
    return Check(
        "nftables",
        title,
        verdict,
        summary,
        tuple(evidence),
        result.fixes,
        SEES_TIMEOUT if "drop" in first.verdict else SEES_REFUSED,
        {"findings": list(result.findings)},
    )


def route_check(result: LayerResult, address: str) -> Check:
    title = "routes"
    early = _layer_unread_or_clear(
        result,
        "route",
        title,
        "ip",
        f"no blackhole, unreachable or prohibit route covers {address}",
    )
    if early is not None:
        return early
    first = result.findings[0]
    return Check(
        "route",
        title,
        BLOCKS,
        f"replies to {address} cannot leave: route '{first.rule}'",
        tuple(f"{f.location()}: {f.rule} (owner {f.owner})" for f in result.findings),
        result.fixes,
        SEES_TIMEOUT,
        {"findings": list(result.findings)},
    )


def tcpwrappers_check(
    decision: Decision,
    address: str,
    *,
    libwrap: Optional[bool],
    allow_path: str,
    deny_path: str,
    allow_empty: bool = True,
    daemon: str = "sshd",
) -> Check:
    title = "TCP wrappers (hosts.allow / hosts.deny)"
    data: dict[str, Any] = {
        "allowed": decision.allowed,
        "decided_by": _entry_data(decision.decided_by),
        "matches": [_entry_data(m) for m in decision.matches],
    }
    decided: Optional[EntryMatch] = decision.decided_by
    refused = decision.allowed is False
    if libwrap is False:
        extra = (
            f" ({decided.entry.location()} would refuse {address}, but this sshd does not read it)"
            if refused and decided
            else ""
        )
        return Check(
            "tcpwrappers",
            title,
            NOT_PRESENT,
            f"this sshd is not linked with libwrap: {allow_path} and {deny_path} do not apply{extra}",
            data=data,
        )
    note = (
        ()
        if libwrap
        else ("ldd could not tell whether sshd uses libwrap; evaluated as if it does",)
    )
    if decision.allowed is True:
        if decided is not None:
            summary = f"{decided.entry.location()} grants {address}: {decided.entry.display()}"
        else:
            summary = f"no entry in {allow_path} or {deny_path} refuses {address}"
        return Check("tcpwrappers", title, CLEAR, summary, note, data=data)
    evidence = list(note)
    for m in decision.maybe:
        evidence.append(f"{m.entry.location()}: {m.entry.display()}  ({m.reason})")
        evidence.extend(f"  unknown: {u}" for u in m.uncertain)
    if decided is not None:
        evidence.append(
            f"{decided.entry.location()}: {decided.entry.display()}  ({decided.reason})"
        )
    for m in decision.matches:
        if m is not decided and m not in decision.maybe and m.decides_deny:
            evidence.append(
                f"also refuses it after that: {m.entry.location()}: {m.entry.display()}"
            )
    fixes = _tcpwrappers_fixes(decision, address, allow_path, allow_empty, daemon)
    sees = SEES_RESET + " (after about 5 s: libwrap waits before closing)"
    if refused and decided is not None:
        summary = f"{decided.entry.location()} refuses {address}: {decided.entry.display()}"
        return Check("tcpwrappers", title, BLOCKS, summary, tuple(evidence), fixes, sees, data)
    summary = f"{allow_path} / {deny_path} may refuse {address}"
    return Check("tcpwrappers", title, MAY_BLOCK, summary, tuple(evidence), fixes, sees, data)


def _entry_data(match: Optional[EntryMatch]) -> Optional[dict[str, Any]]:
    if match is None:
        return None
    entry = match.entry
    return {
        "file": entry.path,
        "line": entry.line,
        "end_line": entry.end_line,
        "entry": entry.display(),
        "matched": match.matched_client,
        "effect": match.effect,
        "certain": match.match is Match.YES,
        "owner": entry.owner,
        "reason": match.reason,
    }


def _tcpwrappers_fixes(
    decision: Decision, address: str, allow_path: str, allow_empty: bool, daemon: str
) -> tuple[str, ...]:
    """Remove the refusing entry (only that entry), or grant the address in hosts.allow."""
    fixes: list[str] = []
    token = client_pattern(address)
    decided = decision.decided_by
    if decided is not None and decided.effect == "deny":
        entry = decided.entry
        span = f"{entry.line}" if entry.line == entry.end_line else f"{entry.line},{entry.end_line}"
        if len(entry.client_tokens) == 1 and decided.matched_client is not None:
            fixes.append(f"sed -i '{span}d' {shlex.quote(entry.path)}")
        elif decided.matched_client:
            fixes.append(
                f"edit {entry.path} line {entry.line}: take '{decided.matched_client}' out of "
                f"'{entry.clients.strip()}'"
            )
        if entry.owner == "sshguard":
            fixes.append("sshguard wrote that entry: it may write it again until its block expires")
    # A grant at the very top of hosts.allow comes before every refusal.
    grant = f"{daemon}: {token}"
    if allow_empty:
        fixes.append(f"echo '{grant}' >> {allow_path}")
    else:
        fixes.append(f"sed -i '1i {grant}' {shlex.quote(allow_path)}")
    return tuple(dict.fromkeys(fixes))


def listen_check(
    config: SshdConfig,
    address: IPAddress,
    port: int,
    laddr: Optional[str],
    listening: Optional[Sequence[int]],
) -> Check:
    title = "sshd ListenAddress / Port"
    ok, why = listens_for(config, address.version, port, laddr)
    fix = (
        f"set `Port {port}` / `ListenAddress` in sshd_config, then `sshd -t && systemctl reload ssh`",
    )
    if not ok:
        return Check("listen", title, BLOCKS, why, (), fix, SEES_REFUSED)
    if listening is not None and port not in listening:
        return Check(
            "listen",
            title,
            BLOCKS,
            f"nothing listens on TCP port {port} here: is sshd running?",
            (why,),
            ("systemctl status ssh", "systemctl start ssh"),
            SEES_REFUSED,
        )
    return Check("listen", title, CLEAR, why)


@dataclass(frozen=True)
class Connection:
    local: str
    peer: str
    pids: tuple[int, ...]


@dataclass(frozen=True)
class Load:
    """Unauthenticated connections to sshd now."""

    startups: Optional[int]  # what MaxStartups compares with
    source: str  # where `startups` comes from
    from_address: Optional[int] = None  # how many of them come from the address's netblock
    preauth: tuple[Connection, ...] = ()
    total: int = 0  # established connections to sshd's port


def maxstartups_check(
    config: SshdConfig, load: Load, address: str, hits: Sequence[LogHit], port: int = 22
) -> Check:
    title = "MaxStartups (unauthenticated connections)"
    ms = config.max_startups
    per_source = config.per_source_max_startups
    drops = [h for h in hits if h.kind == "maxstartups"]
    evidence = [
        f"MaxStartups {ms}" + (f", PerSourceMaxStartups {per_source}" if per_source else "")
    ]
    if load.startups is not None:
        evidence.append(f"{load.startups} unauthenticated connection(s) now ({load.source})")
    evidence.extend(f"waiting: {c.peer} -> {c.local}" for c in load.preauth[:10])
    evidence.extend(f"log: {h.line}" for h in drops[-5:])
    data = {"max_startups": str(ms), "per_source": per_source, "load": load}
    sees = SEES_RESET + " (or: Connection closed by remote host)"
    bigger = f"{ms.start * 2}:{ms.rate}:{max(ms.full * 2, ms.start * 2)}"
    fixes = (
        f"raise it in sshd_config, e.g. `MaxStartups {bigger}`, then `sshd -t && systemctl reload ssh`",
        f"see who holds them: ss -tnp state established '( sport = :{port} )'",
    )
    if per_source and load.from_address is not None and load.from_address >= per_source:
        summary = (
            f"{load.from_address} unauthenticated connection(s) from {address}'s network already: "
            f"PerSourceMaxStartups {per_source} refuses more"
        )
        return Check("maxstartups", title, BLOCKS, summary, tuple(evidence), fixes, sees, data)
    if load.startups is None:
        summary = "the number of unauthenticated connections could not be read"
        if drops:
            summary += f"; sshd dropped {address}'s connections recently"
        return Check("maxstartups", title, MAY_BLOCK, summary, tuple(evidence), fixes, sees, data)
    percent = ms.drop_percent(load.startups)
    if percent >= 100:
        summary = (
            f"{load.startups} unauthenticated connection(s) waiting >= {ms.full}: sshd drops "
            "every new connection"
        )
        return Check("maxstartups", title, BLOCKS, summary, tuple(evidence), fixes, sees, data)
    if percent > 0:
        summary = (
            f"{load.startups} unauthenticated connection(s) waiting: sshd drops {percent}% of new "
            "connections at random (MaxStartups throttling)"
        )
        return Check("maxstartups", title, MAY_BLOCK, summary, tuple(evidence), fixes, sees, data)
    if drops:
        summary = (
            f"below MaxStartups now ({load.startups} waiting, throttling from {ms.start}), but sshd "
            f"dropped connections from {address} recently"
        )
        return Check("maxstartups", title, MAY_BLOCK, summary, tuple(evidence), fixes, sees, data)
    summary = (
        f"{load.startups} unauthenticated connection(s) waiting, throttling starts at {ms.start}"
    )
    return Check("maxstartups", title, CLEAR, summary, tuple(evidence), data=data)


def penalties_check(
    config: SshdConfig, address: str, hits: Sequence[LogHit], version: Optional[tuple[int, int]]
) -> Check:
    title = "PerSourcePenalties"
    penalties = [h for h in hits if h.kind == "penalty"]
    if config.per_source_penalties is None:
        which = f"OpenSSH {version[0]}.{version[1]}" if version else "this sshd"
        return Check(
            "penalties", title, NOT_PRESENT, f"{which} has no PerSourcePenalties (new in 9.8)"
        )
    value = config.per_source_penalties
    if value == "no":
        return Check("penalties", title, CLEAR, "PerSourcePenalties no")
    if in_exempt_list(config, address):
        return Check(
            "penalties",
            title,
            CLEAR,
            f"{address} is in PerSourcePenaltyExemptList ({config.penalty_exempt})",
        )
    fixes = (
        f"add {address} to PerSourcePenaltyExemptList in sshd_config, then `sshd -t && systemctl reload ssh`",
        "penalties live in sshd's listener: restarting sshd forgets them (systemctl restart ssh)",
    )
    evidence = (f"PerSourcePenalties {value}", *(f"log: {h.line}" for h in penalties[-5:]))
    sees = SEES_RESET + " (or: Not allowed at this time)"
    if penalties:
        return Check(
            "penalties",
            title,
            MAY_BLOCK,
            f"sshd penalised {address} recently (penalties last up to the configured max)",
            evidence,
            fixes,
            sees,
        )
    return Check(
        "penalties",
        title,
        CLEAR,
        f"no penalty for {address} in the logs (PerSourcePenalties is on)",
        evidence,
    )


def users_check(access: UserAccess, user: Optional[str]) -> Check:
    title = "AllowUsers / DenyUsers / AllowGroups / DenyGroups"
    if access.allowed is True:
        return Check("users", title, CLEAR, access.reason)
    fix: tuple[str, ...] = ()
    if access.directive:
        what = f"'{access.pattern}' from " if access.pattern else f"{user} to "
        verb = "remove" if access.pattern else "add"
        fix = (
            f"{verb} {what}{access.directive} in sshd_config (or the Match block that sets it), "
            "then `sshd -t && systemctl reload ssh`",
        )
    verdict = BLOCKS if access.allowed is False else MAY_BLOCK
    return Check("users", title, verdict, access.reason, (), fix, SEES_DENIED + " after the banner")


def sshd_error_check(message: str) -> Check:
    fixes = ["sshd -t  (shows what is wrong with the configuration)"]
    if "privilege separation directory" in message:
        # systemd creates /run/sshd only while ssh.service runs: sshd is probably stopped
        fixes = ["systemctl status ssh", "systemctl start ssh"]
    return Check(
        "sshd",
        "sshd's configuration",
        MAY_BLOCK,
        f"sshd's effective configuration could not be read: {message}",
        (),
        tuple(fixes),
    )


# -- logs


@dataclass(frozen=True)
class LogHit:
    kind: str  # maxstartups | tcpwrappers | penalty | denied-user | fail2ban-ban | fail2ban-unban | auth-failure
    line: str
    source: str


_LOG_PATTERNS = (
    ("maxstartups", re.compile(r"past MaxStartups|Exceeded MaxStartups")),
    ("tcpwrappers", re.compile(r"refused connect from")),
    ("penalty", re.compile(r"penalty:|srclimit_penalise")),
    ("denied-user", re.compile(r"not allowed because")),
    ("fail2ban-ban", re.compile(r"\]\s+(?:Restore\s+)?Ban\s")),
    ("fail2ban-unban", re.compile(r"\]\s+Unban\s")),
    ("auth-failure", re.compile(r"Failed password|Invalid user|authentication failure")),
)
BLOCKING_LOG_KINDS = ("maxstartups", "tcpwrappers", "penalty", "denied-user", "fail2ban-ban")


def address_pattern(address: str) -> re.Pattern[str]:
    """The address as a whole word in a log line (203.0.113.4 is not 203.0.113.45)."""
    if ":" in address:
        return re.compile(rf"(?<![\w:]){re.escape(address)}(?![\w:])", re.IGNORECASE)
    return re.compile(rf"(?<![\w.]){re.escape(address)}(?!\w|\.\d)")


def scan_log(
    lines: Sequence[str],
    address: str,
    source: str,
    *,
    now: Optional[datetime.datetime] = None,
    max_age: datetime.timedelta = datetime.timedelta(hours=24),
) -> list[LogHit]:
    """Log lines about `address` that tell why it was refused, oldest first. Lines with a
    time stamp (syslog, ISO, fail2ban's) older than `max_age` are left out; lines without one
    (sshd -E) are kept."""
    wanted = address_pattern(address)
    now = now or datetime.datetime.now()
    hits = []
    for line in lines:
        if address not in line and ":" not in address:
            continue
        if not wanted.search(line):
            continue
        stamp = line_time(line, now)
        if stamp is not None and now - stamp > max_age:
            continue
        for kind, pattern in _LOG_PATTERNS:
            if pattern.search(line):
                hits.append(LogHit(kind, line.rstrip(), source))
                break
    return hits


_ISO = re.compile(r"^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}:\d{2})")
_SYSLOG = re.compile(r"^([A-Z][a-z]{2})\s+(\d{1,2}) (\d{2}:\d{2}:\d{2})")


def line_time(line: str, now: datetime.datetime) -> Optional[datetime.datetime]:
    """The local time a log line starts with, if it starts with one."""
    iso = _ISO.match(line)
    if iso:
        try:
            return datetime.datetime.strptime(f"{iso.group(1)} {iso.group(2)}", "%Y-%m-%d %H:%M:%S")
        except ValueError:
            return None
    classic = _SYSLOG.match(line)
    if classic:
        try:
            stamp = datetime.datetime.strptime(
                f"{now.year} {classic.group(1)} {classic.group(2)} {classic.group(3)}",
                "%Y %b %d %H:%M:%S",
            )
        except ValueError:
            return None
        if stamp - now > datetime.timedelta(days=1):  # December's lines read in January
            stamp = stamp.replace(year=now.year - 1)
        return stamp
    return None


def logs_check(hits: Sequence[LogHit], sources: Sequence[str], address: str) -> Check:
    title = "logs"
    if not sources:
        return Check(
            "logs", title, NOT_PRESENT, "no journal and no auth.log, secure or fail2ban.log found"
        )
    banned = [h for h in hits if h.kind in ("fail2ban-ban", "fail2ban-unban")]
    blocking = [h for h in hits if h.kind in BLOCKING_LOG_KINDS and h.kind != "fail2ban-ban"]
    if banned and banned[-1].kind == "fail2ban-ban":
        blocking.append(banned[-1])
    failures = [h for h in hits if h.kind == "auth-failure"]
    evidence = [f"{h.line}" for h in hits if h.kind != "auth-failure"][-12:]
    if failures:
        evidence.append(
            f"{len(failures)} failed login(s) from {address} (what fail2ban counts); last: "
            f"{failures[-1].line}"
        )
    data = {"sources": list(sources), "counts": _counts(hits)}
    read = f"read {', '.join(sources)}"
    if not blocking:
        return Check(
            "logs",
            title,
            CLEAR,
            f"nothing about refusing {address} ({read})",
            tuple(evidence),
            data=data,
        )
    kinds = ", ".join(dict.fromkeys(h.kind for h in blocking))
    return Check(
        "logs",
        title,
        MAY_BLOCK,
        f"{len(blocking)} line(s) about refusing {address} ({kinds}); {read}",
        tuple(evidence),
        data=data,
    )


def _counts(hits: Sequence[LogHit]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for hit in hits:
        counts[hit.kind] = counts.get(hit.kind, 0) + 1
    return counts


# -- the socket table


_USERS = re.compile(r'\("([^"]*)",pid=(\d+),fd=\d+\)')
_LISTENER = re.compile(r"\[listener\]\s+(\d+)\s+of\s+(\d+)-(\d+)\s+startups")
PREAUTH_TITLES = ("[accepted]", "[net]", "[preauth]")


def parse_ss(text: str) -> list[Connection]:
    """`ss -Htnp state established ...` lines: local, peer, owning pids."""
    connections = []
    for line in text.splitlines():
        fields = line.split()
        # with `state established` ss leaves the State column out: Recv-Q Send-Q Local Peer [users]
        addresses = [f for f in fields if (":" in f and not f.startswith("users:"))]
        if len(addresses) < 2:
            continue
        pids = tuple(int(pid) for _name, pid in _USERS.findall(line))
        connections.append(Connection(addresses[0], addresses[1], pids))
    return connections


def listener_startups(title: str) -> Optional[int]:
    """`sshd: /usr/sbin/sshd -D [listener] 3 of 10-100 startups` -> 3 (OpenSSH 8.2+)."""
    match = _LISTENER.search(title)
    return int(match.group(1)) if match else None


def is_preauth(titles: Sequence[str]) -> bool:
    """A connection is unauthenticated while all its sshd processes are pre-auth ones."""
    return bool(titles) and all(t.rstrip().endswith(PREAUTH_TITLES) for t in titles)


def peer_address(peer: str) -> Optional[IPAddress]:
    host = peer.rsplit(":", 1)[0].strip("[]")
    host = host.split("%", 1)[0]
    try:
        parsed = ipaddress.ip_address(host)
    except ValueError:
        return None
    if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped is not None:
        return parsed.ipv4_mapped
    return parsed


def measure_load(
    listener_titles: Sequence[str],
    connections: Sequence[Connection],
    titles: Callable[[int], str],
    address: IPAddress,
    netblock: tuple[int, int],
) -> Load:
    """Combine the listener's own count with the socket table."""
    preauth = tuple(c for c in connections if is_preauth([titles(p) for p in c.pids]))
    bits = netblock[0] if address.version == 4 else netblock[1]
    network = ipaddress.ip_network(f"{address}/{bits}", strict=False)
    from_address = 0
    for connection in preauth:
        peer = peer_address(connection.peer)
        if peer is not None and peer.version == address.version and peer in network:
            from_address += 1
    counts = [n for n in (listener_startups(t) for t in listener_titles) if n is not None]
    if counts:
        return Load(
            sum(counts), "sshd's listener process title", from_address, preauth, len(connections)
        )
    return Load(
        len(preauth),
        "socket table: sshd processes still [accepted]/[net]/[preauth]",
        from_address,
        preauth,
        len(connections),
    )


# ---------------------------------------------------------------- reading the system


@dataclass(frozen=True)
class Options:
    """What `unban doctor` was asked."""

    user: Optional[str] = None
    port: Optional[int] = None
    sshd_config: Optional[str] = None
    logs: tuple[str, ...] = ()  # read these instead of the journal and /var/log files
    allow_file: str = "/etc/hosts.allow"
    deny_file: str = "/etc/hosts.deny"
    daemon: str = "sshd"  # the name sshd gives libwrap (its argv[0] base name)


class SystemLookups:
    """Set membership through `ipset test` (O(1) in the kernel) and xt_recent through /proc."""

    def set_member(self, name: str, address: str) -> Optional[bool]:
        if which("ipset") is None:
            return None
        result = run("ipset", ["ipset", "test", name, address], check=False, timeout=10)
        if result.returncode == 0:
            return True
        if "NOT in set" in result.stderr + result.stdout:
            return False
        return None

    def recent_member(self, name: str, address: str) -> Optional[bool]:
        try:
            with open(f"/proc/net/xt_recent/{name}") as handle:
                text = handle.read()
        except OSError:
            return None
        wanted = ipaddress.ip_address(address)
        for line in text.splitlines():
            if not line.startswith("src="):
                continue
            try:
                if ipaddress.ip_address(line[4:].split()[0]) == wanted:
                    return True
            except ValueError:
                continue
        return False


def diagnose(address_text: str, options: Options) -> Diagnosis:
    """Run every check for one client address. Needs root (sshd -T, the firewall)."""

    network = parse_target(address_text)
    if network.num_addresses != 1:
        raise InputError(f"'{address_text}': doctor checks one address, not a network")
    address = network.network_address
    shown = show(network)
    notes: list[str] = []
    checks: list[Check] = []

    route = _route_to(shown)
    if route.get("error"):
        notes.append(f"ip route get {shown}: {route['error']}")
    prefsrc = route.get("prefsrc")
    interface = route.get("dev")
    local = route.get("type") == "local"

    # sshd: binary, version, libwrap, effective config (twice: the port and local address
    # decide which Match blocks apply)
    config = None
    version = None
    libwrap: Optional[bool] = None
    port = options.port or 22
    laddr: Optional[str] = None
    destination_known = False
    try:
        binary = sshd_mod.sshd_binary()
        version = sshd_mod.version(binary)
        libwrap = sshd_mod.uses_libwrap(binary)
        first = sshd_mod.read_config(
            shown, user=options.user, config_file=options.sshd_config, sshd=binary
        )
        port = options.port or (first.ports[0] if first.ports else 22)
        laddr, destination_known = _local_address(first, address.version, port, prefsrc)
        config = sshd_mod.read_config(
            shown,
            user=options.user,
            laddr=laddr,
            lport=port,
            config_file=options.sshd_config,
            sshd=binary,
        )
    except LayerError as exc:
        checks.append(sshd_error_check(str(exc).split(": ", 1)[-1]))

    # logs first: several checks use them
    hits, sources = _read_logs(shown, options.logs)
    checks.append(logs_check(hits, sources, shown))

    # the packet filters
    packet = Packet(
        source=address,
        dport=port,
        destination=ipaddress.ip_address(laddr) if laddr and destination_known else None,
        in_interface=interface,
        source_is_local=local,
    )
    checks.extend(_firewall_checks(packet, shown, port))
    results = _layer_results(network)
    checks.append(fail2ban_check(results["fail2ban"], shown))
    checks.append(nftables_check(results["nftables"], shown, port))
    checks.append(route_check(results["route"], shown))

    # TCP wrappers
    allow, deny = tcpwrappers.read_tables(options.allow_file, options.deny_file)
    request = tcpwrappers.Request(
        client=tcpwrappers.Endpoint(shown, None),
        daemon=options.daemon,
        server=tcpwrappers.Endpoint(laddr if destination_known else None, None),
    )
    read_file = tcpwrappers.read_pattern_file
    decision = tcpwrappers.evaluate(allow, deny, request, read_file=read_file)
    if decision.allowed is None and tcpwrappers.depends_on_name(decision):
        name = tcpwrappers.resolve_client_name(shown)
        if name is not None:
            notes.append(f"host name of {shown} as libwrap would see it: {name}")
            request = replace(request, client=tcpwrappers.Endpoint(shown, name))
            decision = tcpwrappers.evaluate(allow, deny, request, read_file=read_file)
    checks.append(
        tcpwrappers_check(
            decision,
            shown,
            libwrap=libwrap,
            allow_path=options.allow_file,
            deny_path=options.deny_file,
            allow_empty=not allow.entries,
            daemon=options.daemon,
        )
    )

    if config is not None:
        listening = _listening_ports()
        checks.append(
            listen_check(config, address, port, laddr if destination_known else None, listening)
        )
        load = _load(port, address, config.per_source_netblock)
        checks.append(maxstartups_check(config, load, shown, hits, port))
        checks.append(penalties_check(config, shown, hits, version))
        checks.append(users_check(_user_access(config, options.user, shown), options.user))
    return Diagnosis(
        address=shown,
        port=port,
        user=options.user,
        server_address=laddr,
        checks=tuple(ordered(checks)),
        notes=tuple(notes),
    )


def _route_to(address: str) -> dict[str, Any]:
    import json

    if which("ip") is None:
        return {"error": "ip is not installed"}
    result = run("route", ["ip", "-j", "route", "get", address], check=False, timeout=10)
    if result.returncode != 0:
        return {"error": " ".join(result.stderr.split())}
    try:
        routes = json.loads(result.stdout)
    except ValueError:
        return {"error": "unreadable output"}
    return dict(routes[0]) if routes else {}


def _local_address(
    config: SshdConfig, version: int, port: int, prefsrc: Optional[str]
) -> tuple[Optional[str], bool]:
    """The server address the client connects to, and whether that is certain: it is when sshd
    listens on exactly one specific address of that family and port."""
    specific = {
        e.host for e in config.listen if e.version == version and e.port == port and not e.wildcard
    }
    wildcard = any(e.wildcard for e in config.listen if e.version == version and e.port == port)
    if len(specific) == 1 and not wildcard:
        return next(iter(specific)), True
    return prefsrc, False


def _firewall_checks(packet: Packet, address: str, port: int) -> list[Check]:
    family = "ipv4" if packet.source.version == 4 else "ipv6"
    layer = XtablesLayer(families=(family,))
    lookups = SystemLookups()
    checks = []
    for backend in BACKENDS:
        if which(tool(backend, family, "-save")) is None:
            checks.append(
                firewall_check(Walk(backend, family, ()), address, port, tool_present=False)
            )
            continue
        try:
            ruleset = layer.ruleset(backend, family)
        except LayerError as exc:
            checks.append(
                Check(
                    "iptables",
                    display_tool(backend, family),
                    MAY_BLOCK,
                    f"could not be read: {exc}",
                )
            )
            continue
        checks.append(firewall_check(walk_ruleset(ruleset, packet, lookups), address, port))
    return checks


def _layer_results(network: Network) -> dict[str, LayerResult]:
    """fail2ban, native nftables and routes, through the engine's own layers."""
    results: dict[str, LayerResult] = {}
    layers: dict[str, Layer] = {}
    try:
        from unban import engine

        layers = {layer.name: layer for layer in engine.default_layers()}
    except ImportError as exc:  # a layer module not there yet: report it, run the rest
        missing = str(exc)
        for name in ("fail2ban", "nftables", "route"):
            results[name] = LayerResult(name, False, f"layer not available here: {missing}")
    for name in ("fail2ban", "nftables", "route"):
        if name in results:
            continue
        layer = layers.get(name)
        if layer is None:
            results[name] = LayerResult(name, False, f"no {name} layer")
            continue
        results[name] = _layer_result(layer, network)
    return results


def _layer_result(layer: Layer, network: Network) -> LayerResult:
    """One layer's status, findings and removal commands. A layer that fails is reported as
    "could not be read" (may block); the other checks still run."""
    try:
        statuses = list(layer.status())
        present = any(s.present for s in statuses)
        detail = "; ".join(s.detail for s in statuses if s.detail)
        if not present:
            return LayerResult(layer.name, False, detail)
        findings = tuple(layer.find(network))
    except Exception as exc:  # noqa: BLE001 - a diagnosis goes on past a broken layer
        message = str(exc) if isinstance(exc, (UnbanError, OSError)) else repr(exc)
        return LayerResult(layer.name, True, "", error=message)
    fixes: list[str] = []
    try:
        for batch in layer.plan(list(findings)):
            fixes.extend(step.command for step in batch.steps)
    except Exception:  # noqa: BLE001 - no fix commands then; the findings still show
        pass
    return LayerResult(layer.name, True, detail, findings, tuple(dict.fromkeys(fixes)))


def _listening_ports() -> Optional[list[int]]:
    if which("ss") is None:
        return None
    result = run("sshd", ["ss", "-Htln"], check=False, timeout=10)
    if result.returncode != 0:
        return None
    ports = []
    for line in result.stdout.splitlines():
        fields = line.split()
        local = next((f for f in fields if ":" in f), None)
        if local and local.rsplit(":", 1)[-1].isdigit():
            ports.append(int(local.rsplit(":", 1)[-1]))
    return ports


def _load(port: int, address: IPAddress, netblock: tuple[int, int]) -> Load:
    if which("ss") is None:
        return Load(None, "ss is not installed")
    listeners = run("sshd", ["ss", "-Htlnp", f"( sport = :{port} )"], check=False, timeout=10)
    established = run(
        "sshd",
        ["ss", "-Htnp", "state", "established", f"( sport = :{port} )"],
        check=False,
        timeout=10,
    )
    if established.returncode != 0:
        return Load(None, f"ss failed: {' '.join(established.stderr.split())}")
    listener_pids = {int(pid) for _n, pid in _USERS.findall(listeners.stdout)}
    listener_titles = [_title(pid) for pid in sorted(listener_pids)]
    return measure_load(
        [t for t in listener_titles if t],
        parse_ss(established.stdout),
        _title,
        address,
        netblock,
    )


def _title(pid: int) -> str:
    """A process's title (sshd rewrites its argv: `sshd: [accepted]`)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            raw = handle.read()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()


def _user_access(config: SshdConfig, user: Optional[str], address: str) -> UserAccess:
    if user is None:
        return sshd_mod.check_user(config, None, address)
    groups = sshd_mod.user_groups(user)
    hostname = None
    if config.use_dns:
        name = tcpwrappers.resolve_client_name(address)
        hostname = name if name not in (None, "unknown", "paranoid") else None
    return sshd_mod.check_user(
        config, user, address, hostname=hostname, groups=groups, exists=groups is not None
    )


_LOG_FILES = ("/var/log/auth.log", "/var/log/secure", "/var/log/fail2ban.log")
_TAIL_BYTES = 8 * 1024 * 1024


def _read_logs(address: str, files: Sequence[str]) -> tuple[list[LogHit], list[str]]:
    """Recent lines about the address: the given files, or the journal (last 24 h) and the
    classic log files (their last 8 MB)."""
    hits: list[LogHit] = []
    sources: list[str] = []
    if not files:
        journal = _journal_lines()
        if journal is not None:
            sources.append("journal (24 h)")
            hits.extend(scan_log(journal, address, "journal"))
        files = tuple(f for f in _LOG_FILES if os.path.isfile(f))
    for path in files:
        lines = _tail(path)
        if lines is None:
            continue
        sources.append(path)
        hits.extend(scan_log(lines, address, path))
    return hits, sources


def _journal_lines() -> Optional[list[str]]:
    if which("journalctl") is None:
        return None
    argv = ["journalctl", "--no-pager", "-q", "-o", "short-iso", "--since=-24h"]
    for ident in ("sshd", "sshd-session", "fail2ban.actions", "fail2ban-server", "fail2ban"):
        argv += ["-t", ident]
    try:
        result = run("logs", argv, check=False, timeout=60)
    except LayerError:
        return None
    if result.returncode != 0:
        return None
    return result.stdout.splitlines()


def _tail(path: str) -> Optional[list[str]]:
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - _TAIL_BYTES))
            data = handle.read()
    except OSError:
        return None
    return data.decode(errors="replace").splitlines()


# ---------------------------------------------------------------- presentation (pure)


def render(diagnosis: Diagnosis) -> Any:
    """A rich Tree: the most likely cause first, each check with evidence and fix."""
    from rich.text import Text
    from rich.tree import Tree

    styles = {BLOCKS: "bold red", MAY_BLOCK: "yellow", CLEAR: "green", NOT_PRESENT: "dim"}
    head = Text(f"unban doctor {diagnosis.address}, port {diagnosis.port}")
    if diagnosis.user:
        head.append(f", user {diagnosis.user}")
    cause = diagnosis.cause
    if cause is None:
        head.append(": nothing found that refuses it", style="green")
    else:
        word = "blocked" if cause.verdict == BLOCKS else "may be blocked"
        head.append(f": {word}; most likely cause: {cause.title}", style=styles[cause.verdict])
    tree = Tree(head)
    for check in diagnosis.checks:
        label = Text()
        label.append(f"[{check.verdict}]", style=styles[check.verdict])
        label.append(f" {check.title}: ", style="bold")
        label.append(check.summary)
        branch = tree.add(label)
        if check.verdict in (CLEAR, NOT_PRESENT):
            continue
        for line in check.evidence:
            branch.add(Text(line, style="dim"))
        if check.client_sees:
            branch.add(Text(f"client sees: {check.client_sees}"))
        for fix in check.fix:
            branch.add(Text(f"fix: {fix}", style="cyan"))
    for note in diagnosis.notes:
        tree.add(Text(f"note: {note}", style="dim"))
    return tree


def text_lines(diagnosis: Diagnosis) -> list[str]:
    """The same report as plain lines (for logs and tests)."""
    from rich.console import Console

    out = io.StringIO()
    Console(width=200, color_system=None, file=out).print(render(diagnosis))
    return out.getvalue().splitlines()
