"""The scanner of unban.owners.nftconf: the rules and set element lists of an nft file with
their character spans, what keeps a block on an address there (`find_cuts`) and the text
without it (`cut_text`). Pure. Apart from the owner so that a file that drops nothing (Debian's
default /etc/nftables.conf) is never scanned and this module never loaded."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Optional

from unban.address import Network, family_of, is_targeted, parse_network, show
from unban.owners.files import Hit

VERDICT = re.compile(r"\b(drop|reject)\b")
HOOK = re.compile(r"^type\s+\w+\s+hook\s+(\w+)")
OFF_PATH = ("forward", "output", "postrouting")  # hooks a SYN to sshd never passes
SADDR = re.compile(r"\b(ip6?)\s+saddr\s+(!=\s*)?(@?[0-9A-Za-z_.:/\-]+)")


@dataclass
class Item:
    """One element of a set literal (named set's `elements` or a rule's anonymous set)."""

    start: int
    end: int

    def text(self, source: str) -> str:
        return source[self.start : self.end]


@dataclass
class Literal:
    """`elements = { ... }` of a named set, or `{ ... }` in a rule."""

    start: int  # the statement's first character ("elements", or the rule's)
    open: int  # the "{"
    close: int  # the "}"
    items: list[Item] = field(default_factory=list)


@dataclass
class Statement:
    """A rule of a chain, an `elements = {...}` of a set: what can be taken out."""

    kind: str  # rule | elements
    table: str  # "inet filter"
    block: str  # the chain or set name
    start: int
    end: int
    literals: list[Literal] = field(default_factory=list)

    def text(self, source: str) -> str:
        return source[self.start : self.end]


@dataclass
class _Frame:
    header: str
    stmt_start: int
    literal: Optional[Literal] = None
    item_start: int = -1
    item_end: int = -1


def _kind(header: str) -> str:
    word = header.split(" ", 1)[0] if header else ""
    if word in ("table", "chain", "set", "map"):
        return word
    if header.replace(" ", "").endswith("elements="):
        return "elements"
    return "literal" if header else "other"


def scan(text: str) -> list[Statement]:
    """The rules and set element lists of one nft file, with their character spans. Pure."""
    statements: list[Statement] = []
    stack: list[_Frame] = []
    stmt_start = 0
    pending: list[Literal] = []  # anonymous set literals of the rule being read
    i = 0

    def names() -> tuple[str, str]:
        table = block = ""
        for frame in stack:
            kind = _kind(frame.header)
            words = frame.header.split()
            if kind == "table":
                table = " ".join(words[1:3]) if len(words) > 2 else f"ip {words[-1]}"
            elif kind in ("chain", "set", "map") and len(words) > 1:
                block = words[1]
        return table, block

    def in_kind(*kinds: str) -> bool:
        return bool(stack) and _kind(stack[-1].header) in kinds

    def end_item(frame: _Frame) -> None:
        if frame.literal is not None and frame.item_start >= 0:
            frame.literal.items.append(Item(frame.item_start, frame.item_end))
        frame.item_start = frame.item_end = -1

    while i < len(text):
        char = text[i]
        if char == "#":
            newline = text.find("\n", i)
            i = len(text) if newline < 0 else newline
            continue
        top = stack[-1] if stack else None
        literal_open = top is not None and top.literal is not None
        if char == '"':
            close = text.find('"', i + 1)
            close = len(text) - 1 if close < 0 else close
            if literal_open and top is not None:
                top.item_start = i if top.item_start < 0 else top.item_start
                top.item_end = close + 1
            i = close + 1
            continue
        if char == "{":
            header = " ".join(text[stmt_start:i].split())
            frame = _Frame(header, stmt_start)
            if _kind(header) in ("elements", "literal"):
                frame.literal = Literal(stmt_start, i, -1)
            stack.append(frame)
            stmt_start = i + 1
        elif char == "}" and top is not None:
            stack.pop()
            kind = _kind(top.header)
            if top.literal is not None:
                end_item(top)
                top.literal.close = i
            if kind == "elements" and top.literal is not None:
                table, block = names()
                statements.append(
                    Statement("elements", table, block, top.stmt_start, i + 1, [top.literal])
                )
                stmt_start = i + 1
            elif kind == "literal" and top.literal is not None:
                pending.append(top.literal)
                stmt_start = top.stmt_start  # the rule goes on after its set
            else:
                stmt_start = i + 1
        elif literal_open and top is not None:
            if char == ",":
                end_item(top)
            elif not char.isspace():
                top.item_start = i if top.item_start < 0 else top.item_start
                top.item_end = i + 1
        elif char in "\n;":
            body = text[stmt_start:i]
            if in_kind("chain") and body.strip():
                table, block = names()
                start = stmt_start + (len(body) - len(body.lstrip()))
                end = stmt_start + len(body.rstrip())
                statements.append(Statement("rule", table, block, start, end, pending))
            pending = []
            stmt_start = i + 1
        i += 1
    return statements


def _networks(text: str) -> list[tuple[str, Network]]:
    found = []
    for _family, negated, value in SADDR.findall(text):
        network = None if negated or value.startswith("@") else parse_network(value)
        if network is not None:
            found.append((value, network))
    return found


def _dropped_sets(statements: Sequence[Statement], source: str) -> set[tuple[str, str]]:
    """(table, set) pairs some rule drops or rejects by source."""
    dropped = set()
    for statement in statements:
        if statement.kind != "rule":
            continue
        text = statement.text(source)
        if not VERDICT.search(text):
            continue
        for _family, negated, value in SADDR.findall(text):
            if value.startswith("@") and not negated:
                dropped.add((statement.table, value[1:]))
    return dropped


def _line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


@dataclass(frozen=True)
class Cut:
    """What taking one hit out removes: an element (`item`) or the whole statement."""

    statement: Statement
    literal: Optional[Literal]
    item: Optional[Item]


def find_cuts(text: str, target: Network) -> list[tuple[Hit, Cut]]:
    """Every element and rule of one file that keeps a block on the target. Pure."""
    statements = scan(text)
    dropped = _dropped_sets(statements, text)
    hooks = _hooks(statements, text)
    found: list[tuple[Hit, Cut]] = []
    for statement in statements:
        if statement.kind == "elements" and (statement.table, statement.block) not in dropped:
            continue
        if statement.kind == "rule" and not VERDICT.search(statement.text(text)):
            continue
        for literal in statement.literals:
            for item in literal.items:
                words = item.text(text).split()
                network = parse_network(words[0]) if words else None
                if network is None or network.version != target.version:
                    continue
                if network.overlaps(target):
                    hit = _hit(text, statement, network, target, item.start, words[0], hooks)
                    found.append((hit, Cut(statement, literal, item)))
        if statement.kind == "rule" and not statement.literals:
            for value, network in _networks(statement.text(text)):
                if network.version == target.version and network.overlaps(target):
                    hit = _hit(text, statement, network, target, statement.start, value, hooks)
                    found.append((hit, Cut(statement, None, None)))
    return found


def _hooks(statements: Sequence[Statement], source: str) -> dict[tuple[str, str], str]:
    """(table, chain) -> the hook of each base chain (`type filter hook input ...`)."""
    hooks = {}
    for statement in statements:
        match = HOOK.search(statement.text(source)) if statement.kind == "rule" else None
        if match:
            hooks[(statement.table, statement.block)] = match.group(1)
    return hooks


def _hit(
    text: str,
    statement: Statement,
    network: Network,
    target: Network,
    at: int,
    value: str,
    hooks: dict[tuple[str, str], str],
) -> Hit:
    rule = " ".join(statement.text(text).split())
    verdict = VERDICT.search(rule)
    on_path: Optional[bool] = None
    if statement.kind == "rule" and hooks.get((statement.table, statement.block)) in OFF_PATH:
        on_path = False
    return Hit(
        line=_line_of(text, at),
        rule=rule,
        network=show(network),
        targeted=is_targeted(network, target),
        family=family_of(network),
        table=statement.table,
        chain=statement.block if statement.kind == "rule" else None,
        set_name=statement.block if statement.kind == "elements" else None,
        element=value if statement.kind == "elements" or statement.literals else None,
        verdict=verdict.group(1) if verdict else "drop",
        on_path=on_path,
    )


def cut_text(text: str, cuts: Sequence[Cut]) -> str:
    """`text` without the cut elements and statements (see the module docstring). Pure."""
    ranges: list[tuple[int, int]] = []
    by_literal: dict[int, tuple[Cut, list[Item]]] = {}
    for cut in cuts:
        if cut.literal is None or cut.item is None:
            ranges.append(_statement_range(text, cut.statement.start, cut.statement.end))
            continue
        entry = by_literal.setdefault(id(cut.literal), (cut, []))
        if cut.item not in entry[1]:
            entry[1].append(cut.item)
    for cut, items in by_literal.values():
        literal = cut.literal
        assert literal is not None
        if len(items) == len(literal.items):
            ranges.append(_statement_range(text, cut.statement.start, cut.statement.end))
            continue
        for item in items:
            ranges.append(_item_range(text, literal, item))
    out = text
    for start, end in sorted(set(ranges), reverse=True):
        out = out[:start] + out[end:]
    return out


def _statement_range(text: str, start: int, end: int) -> tuple[int, int]:
    """The statement, and its whole line when nothing else is on it."""
    line_start = text.rfind("\n", 0, start) + 1
    line_end = text.find("\n", end)
    line_end = len(text) if line_end < 0 else line_end
    before, after = text[line_start:start], text[end:line_end]
    if not before.strip() and (not after.strip() or after.strip().startswith("#")):
        return line_start, min(line_end + 1, len(text))
    if after.lstrip().startswith(";"):
        end = end + len(after) - len(after.lstrip()) + 1
    return start, end


def _item_range(text: str, literal: Literal, item: Item) -> tuple[int, int]:
    """The item and one comma next to it: the one after it (with the spaces that follow on
    the same line; when the line ends there, the spaces before it instead), or, for the last
    item, the one before it."""
    index = literal.items.index(item)
    if index + 1 < len(literal.items):
        comma = text.find(",", item.end)
        end = comma + 1
        while end < len(text) and text[end] in " \t":
            end += 1
        start = item.start
        if text[end : end + 1] in ("\n", ""):  # the line ends after it: no trailing spaces
            while start > literal.open + 1 and text[start - 1] in " \t":
                start -= 1
            end = comma + 1
        return start, end
    previous = literal.items[index - 1]
    return previous.end, item.end
