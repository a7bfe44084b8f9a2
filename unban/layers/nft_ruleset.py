"""One native nft table as `nft -j list table` gives it (pure): its sets, the rules that match
a source address or a set of them, and the elements that hold an address."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from unban.address import Network
from unban.path.nft_syntax import (
    PROTOCOLS,
    Span,
    listed_elements,
    objects,
    span_of,
)

BLOCKING = ("drop", "reject")
SET_TYPES = {4: "ipv4_addr", 6: "ipv6_addr"}


@dataclass(frozen=True)
class SetInfo:
    name: str
    type: str
    flags: tuple[str, ...]
    timeout: bool = False  # a default timeout: elements may expire even without the flag

    @property
    def interval(self) -> bool:
        return "interval" in self.flags

    @property
    def expiring(self) -> bool:
        return self.timeout or "timeout" in self.flags


@dataclass(frozen=True)
class SourceMatch:
    """A positive `ip saddr` / `ip6 saddr` match in a rule whose verdict blocks."""

    chain: str
    handle: int
    verdict: str
    protocol: str  # ip | ip6
    value: Any  # the JSON right-hand side


@dataclass
class TableJson:
    """What `nft -j -t list table` says about one table."""

    family: str
    name: str
    sets: dict[str, SetInfo] = field(default_factory=dict)
    chains: dict[str, list[int]] = field(default_factory=dict)  # rule handles in order
    matches: list[SourceMatch] = field(default_factory=list)
    rules: dict[int, dict[str, Any]] = field(default_factory=dict)  # blocking rules by handle


def parse_table_json(doc: Mapping[str, Any], family: str, name: str) -> TableJson:
    table = TableJson(family, name)
    for item in doc.get("nftables", []):
        if "set" in item:
            s = item["set"]
            flags = s.get("flags", [])
            table.sets[s["name"]] = SetInfo(
                s["name"],
                s["type"] if isinstance(s.get("type"), str) else "",
                tuple([flags] if isinstance(flags, str) else flags),
                "timeout" in s,
            )
        elif "chain" in item:
            table.chains.setdefault(item["chain"]["name"], [])
        elif "rule" in item:
            rule = item["rule"]
            table.chains.setdefault(rule["chain"], []).append(rule["handle"])
            found = list(source_matches(rule))
            if found:
                table.matches.extend(found)
                table.rules[rule["handle"]] = rule
    return table


def source_matches(rule: Mapping[str, Any]) -> Iterator[SourceMatch]:
    """The positive source-address matches of a rule that drops or rejects."""
    exprs = rule.get("expr", [])
    verdict = next((k for e in exprs for k in e if k in BLOCKING), None)
    if verdict is None:
        return
    for expr in exprs:
        match = expr.get("match")
        if not match or match.get("op") not in ("==", "in"):
            continue
        payload = match.get("left", {})
        payload = payload.get("payload") if isinstance(payload, dict) else None
        if not payload or payload.get("field") != "saddr":
            continue
        if payload.get("protocol") not in ("ip", "ip6"):
            continue
        yield SourceMatch(
            rule["chain"], rule["handle"], verdict, payload["protocol"], match.get("right")
        )


@dataclass(frozen=True)
class RuleHit:
    """A rule whose own source value (or anonymous set) overlaps the target."""

    match: SourceMatch
    span: Span
    targeted: bool
    anonymous: bool


def rule_hits(table: TableJson, target: Network) -> list[RuleHit]:
    """Rules matching the target by value: `ip saddr 203.0.113.0/24` or `ip saddr { a, b }`."""
    hits = []
    protocol = PROTOCOLS[target.version]
    for m in table.matches:
        if m.protocol != protocol:
            continue
        value = m.value
        if isinstance(value, dict) and "set" in value:
            spans = [span_of(v) for v in value["set"]]
            if any(s is None for s in spans):
                continue  # concatenations and the like: not a plain source set
            inside = [s for s in spans if s is not None and s.overlaps(target)]
            if inside:
                every = all(s is not None and s.inside(target) for s in spans)
                hits.append(RuleHit(m, inside[0], every, True))
            continue
        if isinstance(value, str) and value.startswith("@"):
            continue
        span = span_of(value)
        if span is not None and span.overlaps(target):
            hits.append(RuleHit(m, span, span.inside(target), False))
    return hits


def set_refs(table: TableJson, target: Network) -> dict[str, list[SourceMatch]]:
    """Named sets of the target's address type that blocking rules match sources against."""
    refs: dict[str, list[SourceMatch]] = {}
    protocol = PROTOCOLS[target.version]
    for m in table.matches:
        if m.protocol != protocol or not (isinstance(m.value, str) and m.value.startswith("@")):
            continue
        info = table.sets.get(m.value[1:])
        if info is None or info.type != SET_TYPES[target.version]:
            continue
        refs.setdefault(info.name, []).append(m)
    return refs


@dataclass(frozen=True)
class Element:
    """A set element holding (part of) the target, with what re-adding it needs."""

    value: str  # as nft prints it
    extras: str  # timeout 10m expires 9m40s600ms comment "..." (may be empty)
    span: Span


def elements_from_json(doc: Mapping[str, Any], target: Network) -> list[Element]:
    """Elements of a `nft -j list set` that overlap the target."""
    found = []
    for s in objects(doc, "set"):
        for item in s.get("elem", []):
            span = span_of(item)
            if span is None or not span.overlaps(target):
                continue
            extras = []
            if isinstance(item, dict) and isinstance(item.get("elem"), dict):
                e = item["elem"]
                if "timeout" in e:
                    extras.append(f"timeout {e['timeout']}s")
                if "expires" in e:
                    extras.append(f"expires {e['expires']}s")
                if "comment" in e:
                    extras.append(f'comment "{e["comment"]}"')
            found.append(Element(span.text, " ".join(extras), span))
    return found


def elements_from_text(text: str) -> list[Element]:
    """The elements in `nft get element` output (value first, then timeout/expires/comment)."""
    found = []
    for item in listed_elements(text):
        value, _, extras = item.partition(" ")
        span = span_of(value)
        if span is not None:
            found.append(Element(value, extras, span))
    return found
