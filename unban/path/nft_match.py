"""One native nft rule against the SYN: does it match (yes / no / maybe, with the reason), what
picked the client out by its source, and what it does then. Pure code; set and map members are
asked of `Lookups.nft_element`, one key at a time.

The JSON is `nft -j` 1.0.6's. Implicit dependencies nft leaves out of it are put back here: an
`ip ...` or `ip6 ...` payload only matches that family's packets (inet, netdev), `reject with
icmp` only IPv4 and `reject with icmpv6` only IPv6 packets. Conntrack runs at priority -200 of
prerouting: before it (ingress, or an earlier prerouting chain) `ct state` is `invalid` and
other ct keys do not match.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Optional, Union

from unban.path.model import IPAddress, Lookups, Match, NftElement, Packet, SourceKey
from unban.path.nft_syntax import Span, render_statement, span_of
from unban.path.tristate import and_, and_all, bool_, negate, or_

TCP = "tcp"
TCP_NUMBER = 6
_TCP_FLAGS = {"fin": 1, "syn": 2, "rst": 4, "psh": 8, "ack": 16, "urg": 32, "ecn": 64, "cwr": 128}
_CT_STATES = {"invalid": 1, "established": 2, "related": 4, "new": 8, "untracked": 64}
_SYN = _TCP_FLAGS["syn"]
_NEW = _CT_STATES["new"]
_INVALID = _CT_STATES["invalid"]
_OTHER_TRANSPORTS = frozenset(
    "udp udplite sctp dccp icmp icmpv6 esp ah comp gre igmp".split()
)  # payloads a TCP SYN does not have
_NON_TERMINAL = frozenset({"counter", "log"})
_CONNTRACK_PRIORITY = -200


@dataclass(frozen=True)
class Context:
    """Where the rule runs: its table and hook, and what the packet looks like there."""

    family: str  # the table's nft family
    table: str
    hook: str
    priority: int
    packet: Packet
    lookups: Lookups
    in_interface: Optional[str]  # the packet's, or an ingress chain's device

    @property
    def conntrack(self) -> Optional[bool]:
        """Has conntrack seen the packet yet? None: the chain runs at conntrack's priority."""
        if self.hook == "ingress":
            return False
        if self.hook == "prerouting" and self.priority <= _CONNTRACK_PRIORITY:
            return None if self.priority == _CONNTRACK_PRIORITY else False
        return True


@dataclass(frozen=True)
class Action:
    """What a matching rule does: accept, drop, reject, return, continue (the next rule),
    jump, goto, unknown; `next` when it has no verdict at all."""

    kind: str
    target: str = ""
    detail: str = ""


NEXT = Action("next")


@dataclass(frozen=True)
class RuleEval:
    match: Match
    why: str
    keys: tuple[SourceKey, ...]
    action: Action


# A value of the packet: an address, a port, a name (protocol, interface, pkttype, fib type),
# or ("bits", n, names) for tcp flags and ct state. `Unknown` when it cannot be known here,
# `Absent` when the packet has no such field (an `ip6` payload of an IPv4 packet).
@dataclass(frozen=True)
class Unknown:
    why: str


@dataclass(frozen=True)
class Absent:
    pass


@dataclass(frozen=True)
class Bits:
    value: int
    names: Mapping[str, int]


@dataclass(frozen=True)
class Source:
    """The client's source address (what a lift can take away)."""

    address: IPAddress


@dataclass(frozen=True)
class Interface:
    """The interface the packet arrives on (`iifname`, `iif`; `eth*` matches by prefix)."""

    name: str


class AllPortsUnknown(Unknown):
    """The client's source port: unknown, but a range of every port matches it."""


Value = Union[IPAddress, int, str, Bits, Source, Interface, Unknown, Absent, tuple[Any, ...]]


def evaluate_rule(rule: Mapping[str, Any], ctx: Context) -> RuleEval:
    """Statements in order: matches narrow the rule, counters and logs go on, the first
    verdict (or vmap, reject, queue, NAT) ends it. A statement that is not understood makes
    the rule's outcome unknown: it is never skipped as if it matched nothing."""
    result = Match.YES
    reasons: list[str] = []
    keys: list[SourceKey] = []
    action = NEXT
    for statement in rule.get("expr", []):
        if len(statement) != 1:
            action = Action("unknown", detail=f"statement {json.dumps(statement)} not understood")
            break
        ((key, value),) = statement.items()
        found: Optional[tuple[Match, str, list[SourceKey]]] = None
        if key == "match" and isinstance(value, dict):
            found = match_expression(value, ctx)
        elif key in ("limit", "quota", "ct count"):
            found = (Match.MAYBE, f"{_text(statement, ctx)}: depends on the traffic", [])
        elif key == "set" and isinstance(value, dict):
            if any(k in s for s in value.get("stmt", []) for k in ("limit", "quota", "ct count")):
                found = (Match.MAYBE, f"{_text(statement, ctx)}: depends on the traffic", [])
        elif key in _NON_TERMINAL or (key == "mangle" and _mangles_metadata(value)):
            continue
        else:
            action, found = _terminal(key, value, statement, ctx)
        if found is not None:
            match, why, more = found
            result = and_(result, match)
            if match is Match.MAYBE:
                reasons.append(why)
            keys.extend(more)
            if result is Match.NO:
                return RuleEval(Match.NO, "", (), NEXT)
        if action is not NEXT:
            break
    return RuleEval(result, "; ".join(reasons), tuple(keys), action)


def _text(statement: Mapping[str, Any], ctx: Context) -> str:
    return render_statement(statement, ctx.family) or json.dumps(statement)


def _mangles_metadata(value: Any) -> bool:
    """`meta mark set`, `ct mark set`: changes no field a later match reads as evaluated here
    (marks are "maybe" anyway). A payload rewrite (`ip saddr set`) is not followed."""
    key = value.get("key") if isinstance(value, dict) else None
    return isinstance(key, dict) and ("meta" in key or "ct" in key)


def _terminal(
    key: str, value: Any, statement: Mapping[str, Any], ctx: Context
) -> tuple[Action, Optional[tuple[Match, str, list[SourceKey]]]]:
    text = _text(statement, ctx)
    if key in ("accept", "drop", "return", "continue"):
        return Action(key, detail=key), None
    if key in ("jump", "goto") and isinstance(value, dict):
        return Action(key, str(value.get("target")), text), None
    if key == "reject":
        kind = value.get("type") if isinstance(value, dict) else None
        needs = {"icmp": 4, "icmpv6": 6}.get(str(kind))
        if needs is not None and needs != ctx.packet.version:
            return Action("reject", detail=text), (Match.NO, "", [])
        return Action("reject", detail=text), None
    if key == "vmap" and isinstance(value, dict):
        return _vmap(value, ctx)
    if key == "queue":
        return Action("unknown", detail=f"{text}: a userspace program decides"), None
    if key in ("dnat", "redirect"):
        return Action("unknown", detail=f"{text}: the destination is rewritten"), None
    if key in ("snat", "masquerade"):
        return Action("unknown", detail=f"{text}: the source is rewritten"), None
    if key == "synproxy":
        return Action("unknown", detail=f"{text}: SYNPROXY answers the SYN itself"), None
    return Action("unknown", detail=f"{text}: not evaluated here"), None


# ---------------------------------------------------------------- verdict maps


def _verdict(value: Any) -> Optional[Action]:
    """An anonymous map's JSON verdict, or a named map's value as nft prints it."""
    if isinstance(value, dict) and len(value) == 1:
        ((key, inner),) = value.items()
        if key in ("jump", "goto") and isinstance(inner, dict):
            return Action(key, str(inner.get("target")), f"{key} {inner.get('target')}")
        if key in ("accept", "drop", "return", "continue"):
            return Action(key, detail=key)
        return None
    if isinstance(value, str):
        words = value.split()
        if len(words) == 1 and words[0] in ("accept", "drop", "return", "continue"):
            return Action(words[0], detail=words[0])
        if len(words) == 2 and words[0] in ("jump", "goto"):
            return Action(words[0], words[1].strip('"'), value)
    return None


def _vmap(
    value: Mapping[str, Any], ctx: Context
) -> tuple[Action, Optional[tuple[Match, str, list[SourceKey]]]]:
    subject = subject_of(value.get("key"), ctx)
    data = value.get("data")
    if isinstance(data, str) and data.startswith("@"):
        match, why, keys, element = _named(data[1:], subject, ctx, negated=False)
        if match is Match.NO:
            return NEXT, (Match.NO, "", [])
        if match is Match.MAYBE:
            return Action("unknown", detail=f"vmap {data}: {why}"), (match, why, [])
        action = _verdict(element.value)
        if action is None:
            return Action("unknown", detail=f"vmap {data}: value {element.value!r}"), None
        return _from_map(action, f"{element.element} : {element.value}"), (match, "", keys)
    if not (isinstance(data, dict) and isinstance(data.get("set"), list)):
        return Action("unknown", detail="vmap not understood"), None
    maybes: list[tuple[Action, str]] = []
    for item in data["set"]:
        if not (isinstance(item, list) and len(item) == 2):
            return Action("unknown", detail="vmap element not understood"), None
        match, why = compare(subject, item[0])
        action = _verdict(item[1])
        if action is None:
            return Action("unknown", detail=f"vmap verdict {json.dumps(item[1])}"), None
        entry = f"{_element_text(item[0])} : {action.detail}"
        if match is Match.YES:
            keys = _anonymous_keys(subject, {"set": [item[0]]})
            return _from_map(action, entry), (Match.YES, "", keys)
        if match is Match.MAYBE:
            maybes.append((_from_map(action, entry), why))
    if not maybes:
        return NEXT, (Match.NO, "", [])
    why = "; ".join(sorted({w for _a, w in maybes}))
    if len(maybes) == 1:
        return maybes[0][0], (Match.MAYBE, why, [])
    return Action("unknown", detail=f"vmap: several entries may match ({why})"), (
        Match.MAYBE,
        why,
        [],
    )


def _from_map(action: Action, entry: str) -> Action:
    return Action(action.kind, action.target, f"{action.detail} (vmap {entry})")


# ---------------------------------------------------------------- matches


def match_expression(match: Mapping[str, Any], ctx: Context) -> tuple[Match, str, list[SourceKey]]:
    op, right = match.get("op"), match.get("right")
    subject = subject_of(match.get("left"), ctx)
    negated = op == "!="
    if isinstance(subject, Absent):
        return Match.NO, "", []
    if op not in ("==", "!=", "in"):
        return Match.MAYBE, f"comparison {op} is not evaluated here", []
    if isinstance(right, str) and right.startswith("@"):
        result, why, keys, _e = _named(right[1:], subject, ctx, negated)
    elif isinstance(subject, Bits):
        result, why, keys = _bits(subject, op, right), "", []
        negated = False  # _bits applied `!=` itself
    else:
        result, why = compare(subject, right)
        keys = _anonymous_keys(subject, right) if result is Match.YES else []
    if negated:
        return negate(result), why, []
    return result, why, keys if result is Match.YES else []


def _all_ports(right: Any) -> bool:
    if isinstance(right, dict) and isinstance(right.get("range"), list):
        low, high = right["range"]
        return bool(low == 0 and high == 65535)
    if isinstance(right, dict) and isinstance(right.get("set"), list):
        return any(_all_ports(v) for v in right["set"])
    return False


def subject_of(left: Any, ctx: Context) -> Value:
    """The packet's value for a JSON left-hand side."""
    packet = ctx.packet
    if not isinstance(left, dict) or len(left) != 1:
        return Unknown(f"{json.dumps(left)} is not evaluated here")
    ((kind, value),) = left.items()
    if kind == "payload" and isinstance(value, dict):
        return _payload(str(value.get("protocol")), str(value.get("field")), ctx)
    if kind == "meta" and isinstance(value, dict):
        return _meta(str(value.get("key")), ctx)
    if kind == "ct" and isinstance(value, dict):
        return _ct(value, ctx)
    if kind == "concat" and isinstance(value, list):
        return tuple(subject_of(v, ctx) for v in value)
    if kind == "fib" and isinstance(value, dict):
        flags = value.get("flags", [])
        flags = [flags] if isinstance(flags, str) else list(flags)
        if value.get("result") == "type" and flags == ["daddr"]:
            return "local"  # the SYN is for this host
        if value.get("result") == "type" and flags == ["saddr"]:
            return "local" if packet.source_is_local else "unicast"
        if value.get("result") == "oif" and {"saddr", "iif"} <= set(flags) and packet.in_interface:
            # a reverse-path check (firewalld's rpfilter): the interface the SYN arrives on is
            # the one the route back to the client leaves by (unban took it from that route),
            # so the lookup finds an output interface: `oif missing` is false, `exists` true
            return True
        return Unknown(f"fib {' . '.join(flags)} {value.get('result')}: depends on the routes")
    if kind == "&" and isinstance(value, list) and len(value) == 2:
        inner = subject_of(value[0], ctx)
        if isinstance(inner, Bits):
            mask = _bit_value(value[1], inner.names)
            if mask is not None:
                return Bits(inner.value & mask, inner.names)
        return Unknown(f"a bitwise match on {json.dumps(value[0])} is not evaluated here")
    if kind == "numgen":
        return Unknown("numgen: a counter or a random number picks the way")
    return Unknown(f"{kind} {json.dumps(value)} is not evaluated here")


def _payload(protocol: str, field: str, ctx: Context) -> Value:
    packet = ctx.packet
    if protocol in ("ip", "ip6"):
        if (protocol == "ip") != (packet.version == 4):
            return Absent()
        if field == "saddr":
            return Source(packet.source)
        if field == "daddr":
            if packet.destination is None:
                return Unknown(f"{protocol} daddr: the server address the client uses is not known")
            return packet.destination
        if field in ("protocol", "nexthdr"):
            return TCP
        return Unknown(f"{protocol} {field}: not evaluated here")
    if protocol in ("tcp", "th"):
        if field == "dport":
            return packet.dport
        if field == "sport":
            return AllPortsUnknown(f"{protocol} sport: the client's source port is not known")
        if field == "flags" and protocol == "tcp":
            return Bits(_SYN, _TCP_FLAGS)
        return Unknown(f"{protocol} {field}: not evaluated here")
    if protocol in _OTHER_TRANSPORTS:
        return Absent()
    return Unknown(f"{protocol} {field}: not evaluated here")


def _meta(key: str, ctx: Context) -> Value:
    if key == "l4proto":
        return TCP
    if key == "nfproto":
        return "ipv4" if ctx.packet.version == 4 else "ipv6"
    if key == "protocol":
        return "ip" if ctx.packet.version == 4 else "ip6"
    if key in ("iifname", "iif"):
        if ctx.in_interface is None:
            return Unknown(f"{key}: the interface the client's packets arrive on is not known")
        return Interface(ctx.in_interface)
    if key == "pkttype":
        return "host"
    if key == "mark":
        return Unknown("meta mark: the packet's mark is not known")
    return Unknown(f"meta {key}: not evaluated here")


def _ct(value: Mapping[str, Any], ctx: Context) -> Value:
    key = str(value.get("key"))
    seen = ctx.conntrack
    if seen is None:
        return Unknown(f"ct {key}: the chain runs at conntrack's own priority (-200)")
    if key == "state":
        return Bits(_NEW if seen else _INVALID, _CT_STATES)
    if not seen:
        return Absent()
    if "dir" in value:
        return Unknown(f"ct {value['dir']} {key}: not evaluated here")
    if key == "direction":
        return "original"
    if key == "l3proto":
        return "ipv4" if ctx.packet.version == 4 else "ipv6"
    if key == "protocol":
        return TCP
    if key == "mark":
        return Unknown("ct mark: the connection's mark is not known")
    return Unknown(f"ct {key}: not evaluated here")


def _bit_value(right: Any, names: Mapping[str, int]) -> Optional[int]:
    if isinstance(right, int) and not isinstance(right, bool):
        return right
    if isinstance(right, str):
        return names.get(right)
    if isinstance(right, list):
        parts = [_bit_value(v, names) for v in right]
        return None if None in parts else sum(p for p in parts if p is not None)
    if isinstance(right, dict) and isinstance(right.get("|"), list):
        return _bit_value(right["|"], names)
    return None


def _bits(subject: Bits, op: Any, right: Any) -> Match:
    """Flag matches as the kernel runs them: `ct state new` is (state & new) != 0,
    `!=` is (state & value) == 0, `==` and a set compare the whole value."""
    if isinstance(right, dict) and isinstance(right.get("set"), list):
        values = [_bit_value(v, subject.names) for v in right["set"]]
        if None in values:
            return Match.MAYBE
        found = subject.value in values
        return bool_(not found if op == "!=" else found)
    value = _bit_value(right, subject.names)
    if value is None:
        return Match.MAYBE
    if op == "in":
        return bool_(subject.value & value != 0)
    if op == "!=":
        return bool_(subject.value & value == 0)
    return bool_(subject.value == value)


def compare(subject: Value, right: Any) -> tuple[Match, str]:
    """The packet's value against a right-hand side: a value, prefix, range, anonymous set
    (any element), or a concatenation (every part)."""
    if isinstance(right, dict) and isinstance(right.get("set"), list):
        results = [compare(subject, v) for v in right["set"]]
        return or_([r for r, _w in results]), "; ".join(sorted({w for _r, w in results if w}))
    if isinstance(subject, Absent):
        return Match.NO, ""
    if isinstance(subject, AllPortsUnknown):
        return (Match.YES, "") if _all_ports(right) else (Match.MAYBE, subject.why)
    if isinstance(subject, Unknown):
        return Match.MAYBE, subject.why
    if isinstance(subject, tuple):
        parts = right.get("concat") if isinstance(right, dict) else None
        if not isinstance(parts, list) or len(parts) != len(subject):
            return Match.MAYBE, "a concatenation of another shape"
        results = [compare(s, p) for s, p in zip(subject, parts)]
        return and_all([r for r, _w in results]), "; ".join(w for _r, w in results if w)
    if isinstance(subject, Source):
        return _address_in(subject.address, right), ""
    if isinstance(subject, Interface):
        if not isinstance(right, str):
            return Match.MAYBE, f"interface {json.dumps(right)} is not evaluated here"
        if right.endswith("*") and not right.endswith("\\*"):
            return bool_(subject.name.startswith(right[:-1])), ""
        return bool_(subject.name == right), ""
    if isinstance(subject, bool):
        if isinstance(right, bool):
            return bool_(subject is right), ""
        return Match.MAYBE, f"{json.dumps(right)} against a yes/no value"
    if isinstance(subject, (str, int)) and not isinstance(subject, bool):
        return _scalar(subject, right), ""
    if isinstance(subject, Bits):
        return _bits(subject, "==", right), ""
    return _address_in(subject, right), ""


def _address_in(address: Any, right: Any) -> Match:
    span = span_of(right)
    if span is None:
        return Match.MAYBE
    return bool_(span.holds(address))


def _scalar(subject: Union[str, int], right: Any) -> Match:
    if isinstance(subject, int) and not isinstance(subject, bool):
        if isinstance(right, dict) and isinstance(right.get("range"), list):
            low, high = right["range"]
            if isinstance(low, int) and isinstance(high, int):
                return bool_(low <= subject <= high)
            return Match.MAYBE
        if isinstance(right, int):
            return bool_(subject == right)
        return Match.MAYBE  # a service name: not evaluated
    if subject == TCP and right == TCP_NUMBER:
        return Match.YES
    if isinstance(right, str):
        return bool_(subject == right)
    return Match.NO if isinstance(right, int) else Match.MAYBE


# ---------------------------------------------------------------- named sets and keys


def _key_part(value: Value) -> Optional[str]:
    """A part of a set key as nft's parser reads it; None when it is not known."""
    if isinstance(value, Source):
        return str(value.address)
    if isinstance(value, Interface):
        return f'"{value.name}"'
    if isinstance(value, bool) or isinstance(value, (Unknown, Absent, tuple)):
        return None
    if isinstance(value, Bits):
        names = [n for n, bit in value.names.items() if bit == value.value]
        return names[0] if names else None
    if isinstance(value, str):
        return value
    return str(value)


def _named(
    name: str, subject: Value, ctx: Context, negated: bool
) -> tuple[Match, str, list[SourceKey], NftElement]:
    parts = list(subject) if isinstance(subject, tuple) else [subject]
    if any(isinstance(p, Absent) for p in parts):
        return Match.NO, "", [], NftElement(False)
    texts = [_key_part(p) for p in parts]
    if None in texts:
        why = "; ".join(p.why for p in parts if isinstance(p, Unknown)) or "key not known"
        return Match.MAYBE, f"@{name}: {why}", [], NftElement(None)
    key = " . ".join(t for t in texts if t is not None)
    element = ctx.lookups.nft_element(ctx.family, ctx.table, name, key)
    if element.found is None:
        return Match.MAYBE, f"could not look up {key} in set {name}", [], element
    if not element.found:
        return Match.NO, "", [], element
    keys: list[SourceKey] = []
    position = next((i for i, p in enumerate(parts) if isinstance(p, Source)), None)
    if position is not None and not negated:
        shown = element.element or key
        source = parts[position]
        assert isinstance(source, Source)
        span = _part_span(shown, position)
        targeted = span is not None and span.only(source.address)
        keys.append(SourceKey("set", shown, targeted, name))
    return Match.YES, "", keys, element


def _part_span(element: str, position: int) -> Optional[Span]:
    parts = [p.strip() for p in element.split(" . ")]
    return span_of(parts[position]) if position < len(parts) else None


def _anonymous_keys(subject: Value, right: Any) -> list[SourceKey]:
    """The rule's own source value, or the inline set element, that holds the client."""
    parts = list(subject) if isinstance(subject, tuple) else [subject]
    position = next((i for i, p in enumerate(parts) if isinstance(p, Source)), None)
    if position is None:
        return []
    source = parts[position]
    assert isinstance(source, Source)
    if isinstance(right, dict) and isinstance(right.get("set"), list):
        for item in right["set"]:
            if compare(subject, item)[0] is Match.YES:
                span = _element_span(item, position)
                targeted = span is not None and span.only(source.address)
                return [SourceKey("anonymous", _element_text(item), targeted)]
        return []
    span = _element_span(right, position)
    if span is None:
        return []
    if isinstance(subject, tuple):
        return [SourceKey("anonymous", _element_text(right), span.only(source.address))]
    return [SourceKey("address", span.text, span.only(source.address))]


def _element_span(item: Any, position: int) -> Optional[Span]:
    if isinstance(item, dict) and isinstance(item.get("concat"), list):
        parts = item["concat"]
        return span_of(parts[position]) if position < len(parts) else None
    return span_of(item) if position == 0 else None


def _element_text(item: Any) -> str:
    """An element as nft prints it: `203.0.113.4`, `203.0.113.0/24`, `203.0.113.4 . 22`."""
    if isinstance(item, dict) and isinstance(item.get("concat"), list):
        return " . ".join(_element_text(p) for p in item["concat"])
    span = span_of(item) if isinstance(item, dict) else None
    if span is not None:
        return span.text
    if isinstance(item, dict) and isinstance(item.get("range"), list):
        return "-".join(str(v) for v in item["range"])
    return str(item)
