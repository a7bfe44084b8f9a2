"""`nft -a list table` text (pure): chains with their rule handles and sets, for `unban list`
and for the rule text a delete is checked against."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from unban.path.nft_syntax import (
    display_family,
    quote_name,
)


@dataclass
class TextChain:
    name: str
    handle: Optional[int]
    header: list[str] = field(default_factory=list)  # type/policy/comment lines
    rules: list[tuple[int, str]] = field(default_factory=list)  # (handle, rule text)


@dataclass
class TextSet:
    kind: str  # set | map
    name: str
    handle: Optional[int]
    attributes: list[str] = field(default_factory=list)  # type, flags, timeout, size ...
    elements: int = 0


@dataclass
class TextTable:
    family: str
    name: str
    chains: list[TextChain] = field(default_factory=list)
    sets: list[TextSet] = field(default_factory=list)
    other: list[str] = field(default_factory=list)  # counters, quotas, flowtables: verbatim

    def rule_texts(self) -> dict[int, tuple[str, str]]:
        """handle -> (chain, rule text)."""
        return {h: (c.name, text) for c in self.chains for h, text in c.rules}


def _header(line: str) -> tuple[str, Optional[int]]:
    """`chain f2b-chain { # handle 1` -> ("f2b-chain", 1)."""
    head, _, comment = line.partition(" # handle ")
    name = head.split(" ", 1)[1].rstrip("{").strip() if " " in head else ""
    handle = int(comment.split()[0]) if comment.split() and comment.split()[0].isdigit() else None
    return name.strip('"'), handle


def parse_table_text(text: str) -> list[TextTable]:
    """`nft -a [-s] [-t] list table|chain` text, rules with their handles, sets with counts."""
    tables: list[TextTable] = []
    table: Optional[TextTable] = None
    chain: Optional[TextChain] = None
    nset: Optional[TextSet] = None
    other = 0  # depth inside a counter, quota, flowtable ... block: kept verbatim
    depth = 0  # of an open `elements = {` block: element lines until it closes
    commas = 0
    for raw in text.splitlines():
        line = raw.strip()
        if depth:
            depth, commas = _scan_elements(line, depth, commas)
            if not depth and nset is not None:
                nset.elements = commas + 1
            continue
        if not line:
            continue
        if line.startswith("table "):
            parts = line.split()
            table = TextTable(parts[1], parts[2].strip('"'))
            tables.append(table)
        elif table is None:
            continue
        elif other:
            table.other.append(raw[1:] if raw.startswith("\t") else line)
            other += _opens(line) - (line == "}")
        elif line == "}":
            if chain is None and nset is None:
                table = None
            chain, nset = None, None
        elif chain is not None:
            if " # handle " in line and not line.startswith(("type ", "policy ")):
                rule, _, handle = line.rpartition(" # handle ")
                chain.rules.append((int(handle.split()[0]), rule))
            else:
                chain.header.append(line)
        elif nset is not None:
            if line.startswith("elements = {"):
                depth, commas = _scan_elements(line[len("elements = ") :], 0, 0)
                if not depth:
                    nset.elements = commas + 1
            else:
                nset.attributes.append(line)
        elif line.startswith("chain "):
            chain = TextChain(*_header(line))
            table.chains.append(chain)
        elif line.startswith(("set ", "map ")):
            nset = TextSet(line.split(" ", 1)[0], *_header(line))
            table.sets.append(nset)
        else:
            table.other.append(raw[1:] if raw.startswith("\t") else line)
            other = _opens(line)
    return tables


def _opens(line: str) -> int:
    """1 when the line opens a block: `counter cnt { # handle 2`."""
    return int(line.partition(" # handle ")[0].endswith("{"))


def _scan_elements(line: str, depth: int, commas: int) -> tuple[int, int]:
    """Brace depth and top-level commas after one line of an elements block, quotes skipped."""
    if '"' not in line:
        return depth + line.count("{") - line.count("}"), commas + line.count(",")
    quoted = False
    for char in line:
        if char == '"':
            quoted = not quoted
        elif quoted:
            continue
        elif char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
        elif char == "," and depth == 1:
            commas += 1
    return depth, commas


def format_table(table: TextTable, *, chain: Optional[str] = None) -> list[str]:
    """A table as `nft -a list table` prints it, each set's elements replaced by their count."""
    lines = [f"table {table.family} {quote_name(table.name)} {{"]
    if chain is None:
        for s in table.sets:
            lines.append(f"\t{s.kind} {quote_name(s.name)} {{ # handle {s.handle}")
            lines.extend(f"\t\t{a}" for a in s.attributes)
            lines.append(f"\t\t# {s.elements} element{'s' if s.elements != 1 else ''}")
            lines.append("\t}")
        lines.extend(f"\t{line}" for line in table.other)
    for c in table.chains:
        if chain is not None and c.name != chain:
            continue
        lines.append(f"\tchain {quote_name(c.name)} {{ # handle {c.handle}")
        lines.extend(f"\t\t{h}" for h in c.header)
        lines.extend(f"\t\t{text} # handle {handle}" for handle, text in c.rules)
        lines.append("\t}")
    lines.append("}")
    return lines


def table_data(table: TextTable, *, chain: Optional[str] = None) -> dict[str, Any]:
    return {
        "family": display_family(table.family),
        "nft_family": table.family,
        "table": table.name,
        "sets": []
        if chain is not None
        else [
            {
                "name": s.name,
                "kind": s.kind,
                "handle": s.handle,
                "attributes": s.attributes,
                "elements": s.elements,
            }
            for s in table.sets
        ],
        "chains": [
            {
                "name": c.name,
                "handle": c.handle,
                "header": c.header,
                "rules": [{"handle": h, "rule": text} for h, text in c.rules],
            }
            for c in table.chains
            if chain is None or c.name == chain
        ],
    }
