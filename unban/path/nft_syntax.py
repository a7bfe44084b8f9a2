"""nft's values and rule text, read from `nft -j` JSON: which tables are native, source values as
address intervals, and a rule's JSON printed as `nft -s` prints it. Pure code, shared by the path
evaluator (unban.path.nft) and the nftables layer.

The printing follows nft 1.0.6's own (checked rule by rule against `nft -a -s list table` output
captured in tests/data/nft): `==` and `in` are not printed, anonymous sets as `{ a, b }`,
marks as 0x%08x, a `reject` of the family's own port-unreachable as a bare `reject`, and in
inet/netdev/bridge tables an icmp or icmpv6 reject in full (the type there implies the family).
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Optional, Union

XTABLES_TABLES = frozenset(
    [
        (family, name)
        for family in ("ip", "ip6")
        for name in ("filter", "nat", "mangle", "raw", "security")
    ]
    + [("bridge", name) for name in ("filter", "nat", "broute")]
)

PROTOCOLS = {4: "ip", 6: "ip6"}
DISPLAY_FAMILY = {"ip": "ipv4", "ip6": "ipv6"}

Address = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]


def display_family(nft_family: str) -> str:
    """ip -> ipv4, ip6 -> ipv6; inet, netdev and bridge stay as they are."""
    return DISPLAY_FAMILY.get(nft_family, nft_family)


def objects(doc: Mapping[str, Any], kind: str) -> Iterator[dict[str, Any]]:
    """The `kind` objects of an `nft -j` document, in order."""
    for item in doc.get("nftables", []):
        if kind in item:
            yield item[kind]


def is_native(family: str, table: str) -> bool:
    """False for tables iptables-nft (or ebtables/arptables-nft) owns: the xtables layer's."""
    return family != "arp" and (family, table) not in XTABLES_TABLES


_NAME = re.compile(r"[A-Za-z_.][A-Za-z0-9_./-]*")


def quote_name(name: str) -> str:
    """A table, chain or set name as nft's parser reads it."""
    return name if _NAME.fullmatch(name) else f'"{name}"'


# ---------------------------------------------------------------- source values


@dataclass(frozen=True)
class Span:
    """A source value from a rule or set (an address, a prefix or a range) as the interval of
    addresses it covers. Integers keep a scan of 100k values fast."""

    text: str  # as nft prints it: 203.0.113.4, 198.18.0.0/22, 10.0.0.1-10.0.0.9
    version: int
    low: int
    high: int

    def network(self) -> str:
        """The source network for a Finding: a CIDR (203.0.113.4/32), else the range."""
        first, last = ip_of(self.version, self.low), ip_of(self.version, self.high)
        nets = list(ipaddress.summarize_address_range(first, last))
        return str(nets[0]) if len(nets) == 1 else self.text

    def overlaps(self, target: Any) -> bool:
        """Holds some address of the target (an ipaddress network)."""
        return (
            self.version == target.version
            and self.low <= int(target.broadcast_address)
            and self.high >= int(target.network_address)
        )

    def inside(self, target: Any) -> bool:
        """Holds nothing outside the target (an ipaddress network): a targeted finding."""
        return (
            self.version == target.version
            and self.low >= int(target.network_address)
            and self.high <= int(target.broadcast_address)
        )

    def holds(self, address: Address) -> bool:
        return self.version == address.version and self.low <= int(address) <= self.high

    def only(self, address: Address) -> bool:
        """Holds this address and nothing else."""
        return self.version == address.version and self.low == self.high == int(address)


def ip_of(version: int, value: int) -> Address:
    return ipaddress.IPv4Address(value) if version == 4 else ipaddress.IPv6Address(value)


def _address(text: str) -> Optional[tuple[int, int]]:
    """(version, value) of an address, or None."""
    for version, af in ((4, socket.AF_INET), (6, socket.AF_INET6)):
        try:
            return version, int.from_bytes(socket.inet_pton(af, text), "big")
        except OSError:
            continue
    return None


def span_of(value: Any) -> Optional[Span]:
    """A JSON value (`"1.2.3.4"`, `{"prefix": ...}`, `{"range": [...]}`, `{"elem": ...}`) or
    an element as nft prints it, as a Span; None for anything else (concatenations, names)."""
    if isinstance(value, dict):
        if isinstance(value.get("prefix"), dict):
            prefix = value["prefix"]
            return span_of(f"{prefix.get('addr')}/{prefix.get('len')}")
        if isinstance(value.get("range"), list) and len(value["range"]) == 2:
            first, last = (span_of(v) for v in value["range"])
            if first is None or last is None or first.version != last.version:
                return None
            return Span(f"{first.text}-{last.text}", first.version, first.low, last.high)
        if isinstance(value.get("elem"), dict):
            return span_of(value["elem"].get("val"))
        return None
    if not isinstance(value, str):
        return None
    if "-" in value:
        low_text, _, high_text = value.partition("-")
        low, high = _address(low_text), _address(high_text)
        if low is None or high is None or low[0] != high[0]:
            return None
        return Span(value, low[0], low[1], high[1])
    addr_text, slash, plen_text = value.partition("/")
    parsed = _address(addr_text)
    if parsed is None:
        return None
    version, addr = parsed
    bits = 32 if version == 4 else 128
    plen = int(plen_text) if slash and plen_text.isdigit() else bits
    if (slash and not plen_text.isdigit()) or plen > bits:
        return None
    host = (1 << (bits - plen)) - 1
    return Span(value, version, addr & ~host, addr | host)


# ---------------------------------------------------------------- rule text

_BARE_META = ("iif", "oif", "iifname", "oifname")  # printed without `meta`, values quoted
_HEX_KEYS = ("mark",)
_VERDICTS = ("accept", "drop", "return", "continue")
_OWN_UNREACHABLE = {"ip": "icmp", "ip6": "icmpv6"}


def render_rule(rule: Mapping[str, Any]) -> Optional[str]:
    """A rule's JSON as nft prints it (`nft -s`); None when it holds a statement or expression
    this printer does not know (then the text must come from `nft -a -s list`)."""
    words = []
    family = str(rule.get("family", ""))
    for expr in rule.get("expr", []):
        text = render_statement(expr, family)
        if text is None:
            return None
        words.append(text)
    if "comment" in rule:
        words.append(f'comment "{rule["comment"]}"')
    return " ".join(words)


def render_statement(expr: Mapping[str, Any], family: str = "") -> Optional[str]:
    if len(expr) != 1:
        return None
    ((key, value),) = expr.items()
    if key in _VERDICTS and value is None:
        return key
    if key in ("jump", "goto") and isinstance(value, dict) and "target" in value:
        return f"{key} {quote_name(str(value['target']))}"
    if key == "counter":
        return f'counter name "{value}"' if isinstance(value, str) else "counter"
    if key == "match" and isinstance(value, dict):
        return _render_match(value)
    if key == "vmap" and isinstance(value, dict):
        return _render_vmap(value)
    if key == "reject":
        return _render_reject(value, family)
    if key == "log" and isinstance(value, dict):
        return _render_log(value)
    if key == "limit" and isinstance(value, dict) and set(value) <= {"rate", "per", "burst", "inv"}:
        words = [
            "limit rate",
            *(["over"] if value.get("inv") else []),
            f"{value.get('rate')}/{value.get('per')}",
        ]
        if value.get("burst", 5) != 5:
            words.append(f"burst {value['burst']} packets")
        return " ".join(words)
    if key == "quota" and isinstance(value, dict) and set(value) <= {"val", "val_unit", "inv"}:
        over = "over " if value.get("inv") else ""
        return f"quota {over}{value.get('val')} {value.get('val_unit')}"
    if key == "mangle" and isinstance(value, dict):
        subject = _render_subject(value.get("key"))
        right = _render_value(value.get("value"), _hex(value.get("key")))
        return None if subject is None or right is None else f"{subject} set {right}"
    if key == "notrack" and value is None:
        return "notrack"
    if key in ("dnat", "snat") and isinstance(value, dict) and set(value) <= {"addr", "port"}:
        to = f"{value.get('addr', '')}{':' + str(value['port']) if 'port' in value else ''}"
        return f"{key} to {to}"
    if key == "redirect" and isinstance(value, dict) and set(value) <= {"port"}:
        return f"redirect to :{value['port']}" if "port" in value else "redirect"
    if key == "set" and isinstance(value, dict) and set(value) <= {"op", "elem", "set", "stmt"}:
        elem = _render_subject(value.get("elem"))
        inner = [render_statement(s, family) for s in value.get("stmt", [])]
        if elem is None or None in inner:
            return None
        body = " ".join([elem, *(str(i) for i in inner)])
        return f"{value.get('op')} {value.get('set')} {{ {body} }}"
    return None


def _render_reject(value: Any, family: str) -> Optional[str]:
    if value is None:
        return "reject"
    if not isinstance(value, dict) or not set(value) <= {"type", "expr"}:
        return None
    kind, code = value.get("type"), value.get("expr")
    if kind == "tcp reset":
        return "reject with tcp reset"
    if code == "port-unreachable" and (kind == "icmpx" or _OWN_UNREACHABLE.get(family) == kind):
        return "reject"
    return " ".join(["reject with", str(kind), *filter(None, [code])])


def _render_log(value: Mapping[str, Any]) -> Optional[str]:
    if not set(value) <= {"prefix", "level", "group", "flags"}:
        return None
    words = ["log"]
    if "prefix" in value:
        words.append(f'prefix "{value["prefix"]}"')
    if "group" in value:
        words.append(f"group {value['group']}")
    if value.get("level", "warn") != "warn":
        words.append(f"level {value['level']}")
    if "flags" in value:
        flags = value["flags"]
        words.append("flags " + (flags if isinstance(flags, str) else ",".join(flags)))
    return " ".join(words)


def _render_vmap(value: Mapping[str, Any]) -> Optional[str]:
    subject = _render_subject(value.get("key"))
    data = value.get("data")
    if subject is None:
        return None
    if isinstance(data, str) and data.startswith("@"):
        return f"{subject} vmap {data}"
    if not (isinstance(data, dict) and isinstance(data.get("set"), list)):
        return None
    parts = []
    for item in data["set"]:
        if not (isinstance(item, list) and len(item) == 2 and isinstance(item[1], dict)):
            return None
        left, verdict = _render_value(item[0]), render_statement(item[1])
        if left is None or verdict is None:
            return None
        parts.append(f"{left} : {verdict}")
    return f"{subject} vmap {{ {', '.join(parts)} }}"


def _hex(left: Any) -> bool:
    """Marks are printed in hex."""
    if not isinstance(left, dict):
        return False
    inner = left.get("meta") or left.get("ct")
    return isinstance(inner, dict) and inner.get("key") in _HEX_KEYS


def _quoted(left: Any) -> bool:
    return (
        isinstance(left, dict)
        and isinstance(left.get("meta"), dict)
        and left["meta"].get("key") in _BARE_META
    )


def _render_subject(left: Any) -> Optional[str]:
    if not isinstance(left, dict) or len(left) != 1:
        return None
    ((kind, value),) = left.items()
    if kind == "payload" and isinstance(value, dict):
        if "protocol" not in value or "field" not in value:
            return None
        return f"{value['protocol']} {value['field']}"
    if kind == "meta" and isinstance(value, dict):
        key = value.get("key")
        return str(key) if key in _BARE_META else f"meta {key}"
    if kind == "ct" and isinstance(value, dict) and set(value) == {"key"}:
        return f"ct {value['key']}"
    if kind == "concat" and isinstance(value, list):
        parts = [_render_subject(v) for v in value]
        return None if None in parts else " . ".join(str(p) for p in parts)
    if kind == "fib" and isinstance(value, dict):
        flags = value.get("flags", [])
        flags = [flags] if isinstance(flags, str) else flags
        return f"fib {' . '.join(flags)} {value.get('result')}"
    if kind == "numgen" and isinstance(value, dict) and set(value) <= {"mode", "mod", "offset"}:
        offset = f" offset {value['offset']}" if value.get("offset") else ""
        return f"numgen {value.get('mode')} mod {value.get('mod')}{offset}"
    return None


def _render_match(match: Mapping[str, Any]) -> Optional[str]:
    left, op, right = match.get("left"), match.get("op"), match.get("right")
    if isinstance(left, dict) and isinstance(left.get("&"), list) and len(left["&"]) == 2:
        # `tcp flags & (syn | ack) == syn` is printed `tcp flags syn / syn,ack`
        subject = _render_subject(left["&"][0])
        value, mask = _render_value(right), _render_value(left["&"][1])
        if subject is None or value is None or mask is None or op != "==":
            return None
        return f"{subject} {value} / {mask}"
    subject = _render_subject(left)
    if subject is None:
        return None
    if isinstance(left, dict) and "fib" in left and isinstance(right, bool):
        rendered: Optional[str] = "exists" if right else "missing"
    else:
        rendered = _render_value(right, _hex(left), _quoted(left))
    if rendered is None or op not in ("==", "!=", "in"):
        return None
    return f"{subject} {'!= ' if op == '!=' else ''}{rendered}"


def _render_value(value: Any, hexa: bool = False, quote: bool = False) -> Optional[str]:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return f"0x{value:08x}" if hexa else str(value)
    if isinstance(value, str):
        return f'"{value}"' if quote and not value.startswith("@") else value
    if isinstance(value, list):
        parts = [_render_value(v, hexa, quote) for v in value]
        return None if None in parts else ",".join(str(p) for p in parts)
    if not isinstance(value, dict) or len(value) != 1:
        return None
    ((kind, inner),) = value.items()
    if kind == "set" and isinstance(inner, list):
        parts = [_render_value(v, hexa, quote) for v in inner]
        return None if None in parts else "{ " + ", ".join(str(p) for p in parts) + " }"
    if kind == "concat" and isinstance(inner, list):
        parts = [_render_value(v, hexa, quote) for v in inner]
        return None if None in parts else " . ".join(str(p) for p in parts)
    if kind == "|" and isinstance(inner, list):
        parts = [_render_value(v, hexa, quote) for v in inner]
        return None if None in parts else " | ".join(str(p) for p in parts)
    if kind == "range" and isinstance(inner, list) and len(inner) == 2:
        low, high = (_render_value(v, hexa, quote) for v in inner)
        return None if low is None or high is None else f"{low}-{high}"
    if kind == "prefix" and isinstance(inner, dict):
        return f"{inner.get('addr')}/{inner.get('len')}"
    return None


def listed_elements(text: str) -> list[str]:
    """The elements of the `elements = { ... }` block in nft's text output (`nft get element`,
    `nft list set`), one string each, split at commas outside quotes; [] when it has none."""
    start = text.find("elements = {")
    if start < 0:
        return []
    items: list[str] = []
    current: list[str] = []
    quoted = False
    for char in " ".join(text[start + len("elements = {") :].split()):
        if char == '"':
            quoted = not quoted
        elif not quoted and char in ",}":
            items.append("".join(current).strip())
            current = []
            if char == "}":
                break
            continue
        current.append(char)
    return [item for item in items if item]
