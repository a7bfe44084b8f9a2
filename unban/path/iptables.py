"""iptables and ip6tables rulesets, both backends, as plain data; and the way a new TCP SYN
to sshd takes through them. Pure code.

The ruleset is `iptables-{legacy,nft}-save` text, parsed once (`parse_save`). `walk_ruleset`
follows the SYN through each table's built-in chain of the hooks it meets, in netfilter's
priority order (raw -300, mangle -150, nat -100 at prerouting; mangle -150, filter 0,
security 50 at input), each a `ChainWalk` of every way it can leave that chain: jumps, gotos,
RETURN, the end of a chain (an implicit RETURN) and the built-in chain's policy are followed;
a match that cannot be evaluated (`-m limit`, an ipset that could not be tested, an unknown
destination) branches both ways, each way carrying the `Assumption` it made. It never
guesses: what it cannot evaluate makes a way's verdict depend on it, never a silent accept.
"""

from __future__ import annotations

import bisect
import ipaddress
import shlex
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Optional

from unban.path.model import (
    ACCEPT,
    UNKNOWN,
    Assumption,
    ChainWalk,
    Hop,
    IPAddress,
    Lookups,
    Match,
    Outcome,
    Packet,
    SourceKey,
)
from unban.path.tristate import and_, bool_, negate

# ---------------------------------------------------------------- the ruleset


@dataclass
class Chain:
    name: str
    policy: str  # ACCEPT/DROP for built-in chains, "-" for user chains
    rules: list[str] = field(default_factory=list)  # specs, without "-A CHAIN "


@dataclass
class Table:
    name: str
    chains: dict[str, Chain] = field(default_factory=dict)


@dataclass
class Ruleset:
    backend: str
    family: str
    tables: dict[str, Table] = field(default_factory=dict)


def parse_save(text: str, backend: str, family: str) -> Ruleset:
    """Parse `iptables-save` output. Rules keep the exact spec text the tool printed."""
    ruleset = Ruleset(backend, family)
    table: Optional[Table] = None
    chains: dict[str, Chain] = {}
    for line in text.splitlines():
        if line.startswith("-A "):
            name, _, spec = line[3:].partition(" ")
            chain = chains.get(name)
            if chain is None:  # a rule before its chain header: tolerate it
                chain = chains[name] = Chain(name, "-")
            chain.rules.append(spec)
        elif line.startswith(":"):
            name, _, rest = line[1:].partition(" ")
            chains[name] = Chain(name, rest.split(" ", 1)[0])
        elif line.startswith("*"):
            table = Table(line[1:].strip())
            chains = table.chains
            ruleset.tables[table.name] = table
        elif line.startswith("COMMIT"):
            table = None
    return ruleset


def split_spec(spec: str) -> list[str]:
    """Split a rule spec the way iptables-restore does (quotes only around comments)."""
    return shlex.split(spec) if '"' in spec or "'" in spec else spec.split()


def option_value(tokens: Sequence[str], *names: str) -> Optional[str]:
    """The value after the first of `names` that is not negated, or None."""
    for i, token in enumerate(tokens[:-1]):
        if token in names and (i == 0 or tokens[i - 1] != "!"):
            return tokens[i + 1]
    return None


# ---------------------------------------------------------------- the walk

# The built-in chains a locally delivered packet passes: (table, chain, hook, priority).
HOOK_PATH = (
    ("raw", "PREROUTING", "prerouting", -300),
    ("mangle", "PREROUTING", "prerouting", -150),
    ("nat", "PREROUTING", "prerouting", -100),
    ("mangle", "INPUT", "input", -150),
    ("filter", "INPUT", "input", 0),
    ("security", "INPUT", "input", 50),
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
MAX_OUTCOMES = 256
MAX_DEPTH = 64


def walk_ruleset(
    ruleset: Ruleset, packet: Packet, lookups: Lookups, *, see_through: bool = False
) -> list[ChainWalk]:
    """Follow the SYN through every built-in chain of the hook path that this ruleset has.

    `see_through`: a drop or reject is recorded as an outcome and the walk goes on past it, as
    if it were lifted: what the SYN would meet once the refusals before it are gone (a DROP
    after fail2ban's REJECT is on the way too). The verdict of such walks means nothing.
    """
    if (packet.version == 4) != (ruleset.family == "ipv4"):
        return []
    walks = []
    for table_name, chain, hook, priority in HOOK_PATH:
        table = ruleset.tables.get(table_name)
        if table is None or chain not in table.chains:
            continue
        outcomes = walk_chain(ruleset, table, chain, packet, lookups, see_through)
        walks.append(
            ChainWalk(
                ruleset.backend, ruleset.family, table_name, chain, hook, priority, tuple(outcomes)
            )
        )
    return walks


def walk_chain(
    ruleset: Ruleset,
    table: Table,
    start: str,
    packet: Packet,
    lookups: Lookups,
    see_through: bool = False,
) -> list[Outcome]:
    """Every way the SYN can leave built-in chain `start`, branching at unevaluable matches."""
    outcomes: list[Outcome] = []

    def hop(chain: str, index: int, tokens: Sequence[str]) -> Hop:
        spec = table.chains[chain].rules[index]
        return Hop(
            ruleset.backend,
            ruleset.family,
            table.name,
            chain,
            f"-A {chain} {spec}",
            line=index + 1,
            keys=source_keys(tokens, packet, lookups),
        )

    def policy() -> Outcome:
        verdict = table.chains[start].policy.upper()
        policy_hop = Hop(
            ruleset.backend, ruleset.family, table.name, start, f"-P {start} {verdict}", line=0
        )
        return Outcome(ACCEPT if verdict == "ACCEPT" else "drop", policy_hop, f"policy {verdict}")

    # A way's state: chain, rule index, return stack, rules taken, assumptions made. The way
    # where an unknown match is assumed to match goes on first, so outcomes come out in the
    # order the SYN meets them; the other branch waits in `pending`.
    State = tuple[str, int, tuple[tuple[str, int], ...], tuple[Hop, ...], tuple[Assumption, ...]]
    pending: list[State] = [(start, 0, (), (), ())]
    source_test = SourceTest(packet.source)
    candidates: dict[str, list[int]] = {}

    def next_candidate(chain: str, index: int) -> int:
        """The first rule at or after `index` whose source may be the packet's (others are
        skipped unparsed: a chain of 100k ban rules costs one scan)."""
        if chain not in candidates:
            candidates[chain] = source_test.candidates(table.chains[chain].rules)
        spots = candidates[chain]
        at = bisect.bisect_left(spots, index)
        return spots[at] if at < len(spots) else len(table.chains[chain].rules)

    while pending:
        chain, index, stack, path, assumed = pending.pop(0)
        while True:
            if len(outcomes) >= MAX_OUTCOMES:
                last = policy()
                outcomes.append(Outcome(UNKNOWN, last.hop, "too many ways through the chain"))
                pending.clear()
                break
            rules = table.chains[chain].rules
            index = next_candidate(chain, index)
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
                here = hop(chain, index, tokens)
                if result is Match.MAYBE:
                    skipped = (*assumed, Assumption(here, False, why))
                    pending.append((chain, index + 1, stack, path, skipped))
                    assumed = (*assumed, Assumption(here, True, why))
            if kind == "return":  # back to the calling chain, or the built-in chain's policy
                if not stack:
                    last = policy()
                    outcomes.append(Outcome(last.verdict, last.hop, last.detail, path, assumed))
                    break
                chain, index = stack[-1]
                stack = stack[:-1]
                continue
            if kind in ("drop", "reject") and see_through:
                outcomes.append(Outcome(kind, here, detail, (*path, here), assumed))
                index += 1
                continue
            if kind in ("accept", "drop", "reject", UNKNOWN):
                outcomes.append(Outcome(kind, here, detail, (*path, here), assumed))
                break
            if len(stack) >= MAX_DEPTH:
                outcomes.append(
                    Outcome(UNKNOWN, here, "chains nest too deep", (*path, here), assumed)
                )
                break
            if kind == "jump":
                stack = (*stack, (chain, index + 1))
            path = (*path, here)
            chain, index = target, 0
    return outcomes


class SourceTest:
    """Does a rule's leading `-s NET` (iptables-save puts it first) leave the packet's source
    out? Integer arithmetic on inet_pton, no parsing of the rest: 100k rules in ~0.1 s."""

    def __init__(self, source: IPAddress) -> None:
        self._af = socket.AF_INET if source.version == 4 else socket.AF_INET6
        self._bits = source.max_prefixlen
        self._value = int(source)
        # iptables-save prints an IPv4 source as its canonical network: one that holds the
        # packet's source is one of its 33 supernets, a set lookup on the text.
        self._supernets: Optional[frozenset[str]] = None
        if source.version == 4:
            network = ipaddress.ip_network(source)
            self._supernets = frozenset(
                str(network.supernet(new_prefix=p)) for p in range(0, 33)
            ) | {str(source)}

    def candidates(self, rules: Sequence[str]) -> list[int]:
        """Indices of the rules whose source may be the packet's, in order."""
        if self._supernets is None:
            return [i for i, spec in enumerate(rules) if not self.misses(spec)]
        near = self._supernets
        return [
            i
            for i, spec in enumerate(rules)
            if not spec.startswith("-s ") or spec[3:].partition(" ")[0] in near
        ]

    def misses(self, spec: str) -> bool:
        if not spec.startswith("-s "):
            return False
        end = spec.find(" ", 3)
        address, _, plen = spec[3 : end if end > 0 else None].partition("/")
        try:
            value = int.from_bytes(socket.inet_pton(self._af, address), "big")
        except OSError:
            return False  # another family or a host name: the full match decides
        shift = self._bits - (int(plen) if plen.isdigit() else self._bits)
        return shift >= 0 and (value >> shift) != (self._value >> shift)


def classify_target(tokens: Sequence[str], table: Table) -> tuple[str, str, str]:
    """(kind, target, detail): kind is accept/drop/reject/return/jump/goto/continue/unknown."""
    for i, token in enumerate(tokens[:-1]):
        if token in ("-j", "--jump", "-g", "--goto"):
            target = tokens[i + 1]
            options = " ".join(tokens[i + 2 :])
            detail = f"{target} {options}".strip()
            if token in ("-g", "--goto"):
                if target in table.chains:
                    return "goto", target, detail
                return UNKNOWN, target, f"goto to a missing chain {target}"
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
            return UNKNOWN, target, f"{detail}: {reason}"
    return "continue", "", ""


def source_keys(tokens: Sequence[str], packet: Packet, lookups: Lookups) -> tuple[SourceKey, ...]:
    """What in a matching rule picks the client out by its source: its own `-s NET`, an
    ipset it is a member of (`--match-set NAME src`), an xt_recent list that holds it."""
    keys = []
    source = option_value(tokens, "-s", "--source")
    if source is not None and _in_network(packet.source, source) is Match.YES:
        network = ipaddress.ip_network(source, strict=False)
        keys.append(SourceKey("address", str(network), network.num_addresses == 1))
    _base, modules = parse_matches(tokens)
    for name, options in modules:
        for option in options:
            if name == "set" and option.name == "--match-set" and not option.negated:
                if len(option.values) == 2 and option.values[1].split(",")[0] == "src":
                    set_name = option.values[0]
                    if lookups.ipset_member(set_name, str(packet.source)):
                        keys.append(SourceKey("ipset", str(packet.source), False, set_name))
        if name == "recent" and {o.name for o in options} & {"--rcheck", "--update"}:
            list_name = next(
                (o.values[0] for o in options if o.name == "--name" and o.values), "DEFAULT"
            )
            if "--rdest" not in {o.name for o in options} and lookups.recent_member(
                list_name, str(packet.source)
            ):
                keys.append(SourceKey("recent", str(packet.source), True, list_name))
    return tuple(keys)


# ---------------------------------------------------------------- matches


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
     "pkttype", "udp", "icmp", "icmp6", "ipv6header", "rt"}
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
        result = and_(result, negate(value[0], when=option.negated))
        if value[0] is Match.MAYBE:
            reasons.append(value[1])
        if result is Match.NO:
            return Match.NO, ""
    for name, options in modules:
        value = _module_match(name, options, packet, lookups)
        result = and_(result, value[0])
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
        return bool_(value.lower() in ("tcp", "6", "all", "0")), ""
    if name in ("-i", "--in-interface"):
        if packet.in_interface is None:
            return (
                Match.MAYBE,
                f"-i {value}: the interface the client's packets arrive on is not known",
            )
        return bool_(_interface_match(value, packet.in_interface)), ""
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
        value = negate(value, when=option.negated)
        if value is Match.MAYBE:
            reasons.append(why)
        result = and_(result, value)
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
    if name == "rt":  # an IPv6 routing header (ufw6 drops type 0): a client's SYN has none
        return Match.NO, ""
    if opt in ("--dport", "--destination-port"):
        return bool_(_port_in(packet.dport, first)), ""
    if opt in ("--dports", "--destination-ports"):
        return bool_(any(_port_in(packet.dport, p) for p in first.split(","))), ""
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
        return bool_(({"SYN"} & mask) == compare), ""
    if opt in ("--ctstate", "--state"):
        states = {s.upper() for s in first.split(",")}
        if "NEW" in states:
            return Match.YES, ""
        if states & {"DNAT", "SNAT"}:
            return Match.MAYBE, f"{opt} {first}: depends on NAT"
        return Match.NO, ""
    if opt == "--ctproto":
        return bool_(first.lower() in ("tcp", "6", "all")), ""
    if opt == "--ctorigsrc":
        return _in_network(packet.source, first), ""
    if opt == "--ctdir":
        return bool_(first.upper() == "ORIGINAL"), ""
    if opt == "--match-set" and len(values) == 2:
        set_name, flags = values
        if "," in flags:
            return Match.MAYBE, f"--match-set {set_name} {flags}: a set of several dimensions"
        address = packet.source if flags == "src" else packet.destination
        if address is None:
            return Match.MAYBE, f"--match-set {set_name} {flags}: the server address is not known"
        member = lookups.ipset_member(set_name, str(address))
        if member is None:
            return Match.MAYBE, f"membership of {address} in ipset {set_name} could not be tested"
        return bool_(member), ""
    if opt in ("--update-counters", "--update-subcounters", "--comment"):
        return Match.YES, ""
    if opt == "--return-nomatch":
        return Match.MAYBE, "--return-nomatch"
    if opt in ("--dst-type", "--src-type"):
        types = {t.upper() for t in first.split(",")}
        if opt == "--dst-type":
            return bool_("LOCAL" in types), ""
        local = packet.source_is_local
        return bool_(("LOCAL" in types) if local else bool(types & {"UNICAST"})), ""
    if opt in ("--limit-iface-in", "--limit-iface-out"):
        return Match.YES, ""
    if opt == "--src-range":
        return bool_(_in_range(packet.source, first)), ""
    if opt == "--dst-range":
        if packet.destination is None:
            return Match.MAYBE, f"--dst-range {first}: the server address is not known"
        return bool_(_in_range(packet.destination, first)), ""
    if opt == "--pkt-type":
        return bool_(first.lower() == "unicast"), ""
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
        return negate(Match.YES, when=negated), ""
    member = lookups.recent_member(list_name, str(packet.source))
    if member is None:
        return Match.MAYBE, f"xt_recent list {list_name} could not be read"
    if not member:
        return negate(Match.NO, when=negated), ""
    if names & {"--seconds", "--hitcount", "--rttl"} and names & {"--rcheck", "--update"}:
        return Match.MAYBE, (
            f"{packet.source} is in xt_recent list {list_name}; whether it is recent or frequent "
            "enough (--seconds/--hitcount) is not evaluated here"
        )
    return negate(Match.YES, when=negated), ""


def _in_network(address: IPAddress, text: str) -> Match:
    try:
        network = ipaddress.ip_network(text, strict=False)
    except ValueError:
        return Match.MAYBE
    if network.version != address.version:
        return Match.NO
    return bool_(address in network)


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
