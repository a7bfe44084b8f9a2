"""Edits of /etc/hosts.allow and /etc/hosts.deny that take one address out. Pure code.

An edit touches only the entry that refuses the address, and in it only that address's
pattern: `sshd: 198.51.100.7, 203.0.113.4` becomes `sshd: 198.51.100.7`; an entry left with
no client pattern before its EXCEPT is removed with its continuation lines. The rest of the file
is kept byte for byte.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Optional

from unban.tcpwrappers import Entry, parse_table, remove_client


@dataclass(frozen=True)
class Edit:
    """Replace lines `line`..`end_line` (1-based) of `path`, which must still read `old`."""

    path: str
    line: int
    end_line: int
    old: tuple[str, ...]
    new: tuple[str, ...]


def is_exact_pattern(token: str, address: str) -> bool:
    """True when a client pattern names exactly this one address (any spelling libwrap takes)."""
    wanted = ipaddress.ip_address(address)
    text = token.strip()
    plain = text
    if text.startswith("["):
        inner, _, rest = text[1:].partition("]")
        plain = inner + rest
    base, slash, suffix = plain.partition("/")
    try:
        found = ipaddress.ip_address(base)
    except ValueError:
        return False
    if found != wanted:
        return False
    if not slash:
        return True
    full = "32" if wanted.version == 4 else "128"
    return suffix == full or (wanted.version == 4 and suffix == "255.255.255.255")


def remove_address(entry: Entry, address: str) -> Optional[Edit]:
    """The edit that removes `address`'s own patterns from `entry`, or None if it has none.

    Patterns after EXCEPT stay: taking one out there would widen what the entry refuses.
    """
    current: Optional[Entry] = entry
    lines: tuple[str, ...] = entry.raw
    while current is not None:
        exact = [t for t in current.client_tokens if is_exact_pattern(t, address)]
        if not exact:
            break
        removed = remove_client(current, exact[0])
        if removed is None:
            break
        lines = removed
        parsed = parse_table("".join(lines), entry.path).entries
        current = parsed[0] if parsed else None
    if lines == entry.raw:
        return None
    return Edit(entry.path, entry.line, entry.end_line, entry.raw, lines)


def client_pattern(address: str) -> str:
    """How hosts.allow/hosts.deny write a single address: an IPv6 one in brackets."""
    return f"[{address}]" if ":" in address else address


def allow_line(address: str, comment: str) -> str:
    """A hosts.allow entry that lets `address` reach sshd whatever hosts.deny says.

    The comment gets a line of its own: libwrap reads `#` only at the start of a line.
    """
    return f"# {comment}\nsshd: {client_pattern(address)}\n"


def apply_edits(content: str, edits: Sequence[Edit]) -> str:
    """`content` with `edits` made; raises ValueError when a line no longer reads as expected."""
    lines = content.splitlines(keepends=True)
    for edit in sorted(edits, key=lambda e: e.line, reverse=True):
        current = tuple(lines[edit.line - 1 : edit.end_line])
        if current != edit.old:
            raise ValueError(f"{edit.path}:{edit.line} changed since it was read")
        lines[edit.line - 1 : edit.end_line] = list(edit.new)
    return "".join(lines)


def first_entry_index(lines: Sequence[str]) -> int:
    """The index of the first line after the leading comment block (and blank lines): where
    `prepend` puts its line; len(lines) when there is no other line."""
    at = 0
    while at < len(lines) and (lines[at].startswith("#") or not lines[at].strip()):
        at += 1
    return at


def prepend(content: str, line: str) -> str:
    """`line` before the first entry (after the leading comment block), so it is seen first."""
    lines = content.splitlines(keepends=True)
    at = first_entry_index(lines)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    lines.insert(at, line)
    return "".join(lines)
