"""Whether one iptables rule's matches take a TCP SYN to sshd (`match_rule`): the base options
(-s, -d, -i, -p, ...) and the match modules the walk evaluates (tcp, multiport, conntrack,
set, recent, addrtype, iprange, ...), each a tristate: yes, no, or unknown with why. Pure code;
unban.path.iptables walks the chains with it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

from unban.path.model import IPAddress, Lookups, Match, Packet
from unban.path.tristate import and_, bool_, negate

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
class Option:
    name: str
    values: list[str]
    negated: bool


def parse_matches(tokens: Sequence[str]) -> tuple[list[Option], list[tuple[str, list[Option]]]]:
    """Split a rule's matches into base options (-s, -p, ...) and per-module option lists."""
    base: list[Option] = []
    modules: list[tuple[str, list[Option]]] = []
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
            option = Option(token, list(tokens[i + 1 : j]), negate)
            if modules:
                modules[-1][1].append(option)
            else:
                base.append(option)
            i = j
        elif token.startswith("-"):
            flag_only = token in ("-f", "--fragment")
            values = [] if flag_only else list(tokens[i + 1 : i + 2])
            base.append(Option(token, values, negate))
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


def _base_match(option: Option, packet: Packet) -> tuple[Match, str]:
    name, value = option.name, option.values[0] if option.values else ""
    if name in ("-s", "--source"):
        return in_network(packet.source, value), ""
    if name in ("-d", "--destination"):
        if packet.destination is None:
            return Match.MAYBE, f"-d {value}: the server address the client uses is not known"
        return in_network(packet.destination, value), ""
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
    name: str, options: list[Option], packet: Packet, lookups: Lookups
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
    name: str, option: Option, packet: Packet, lookups: Lookups
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
        return in_network(packet.source, first), ""
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


def _recent_match(options: list[Option], packet: Packet, lookups: Lookups) -> tuple[Match, str]:
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


def in_network(address: IPAddress, text: str) -> Match:
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
