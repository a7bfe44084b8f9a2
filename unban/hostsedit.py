"""Edits of /etc/hosts.allow and /etc/hosts.deny that take one address out. Pure code.

An edit touches only the entry that refuses the address, and in it only that address's
pattern: `sshd: 198.51.100.7, 203.0.113.4` becomes `sshd: 198.51.100.7`; an entry left with
no client pattern before its EXCEPT is removed with its continuation lines. The rest of the file
is kept byte for byte.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Optional

from unban.tcpwrappers import Entry

_TOKEN = re.compile(r"[^,\s]+")


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


def _clients_span(text: str) -> Optional[tuple[int, int]]:
    """Start and end of the client list in a logical line (outside [brackets])."""
    depth = 0
    colons = []
    for i, ch in enumerate(text):
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
        elif depth == 0 and ch == ":":
            colons.append(i)
            if len(colons) == 2:
                break
    if not colons:
        return None
    end = colons[1] if len(colons) == 2 else len(text.rstrip("\r\n"))
    return colons[0] + 1, end


def remove_address(entry: Entry, address: str) -> Optional[Edit]:
    """The edit that removes `address`'s own patterns from `entry`, or None if it has none."""
    text = entry.text
    span = _clients_span(text)
    if span is None:
        return None
    start, end = span
    clients = text[start:end]
    tokens = [(m.group(), m.start(), m.end()) for m in _TOKEN.finditer(clients)]
    except_at = next((i for i, t in enumerate(tokens) if t[0].upper() == "EXCEPT"), len(tokens))
    head = tokens[:except_at]
    keep = [t for t in head if not is_exact_pattern(t[0], address)]
    if len(keep) == len(head):
        return None
    if not keep:
        return Edit(entry.path, entry.line, entry.end_line, entry.raw, ())
    separator = ", " if "," in clients else " "
    lead = clients[: len(clients) - len(clients.lstrip())]
    tail = clients[tokens[except_at - 1][2] :] if except_at else clients
    new_clients = lead + separator.join(t[0] for t in keep) + tail
    newline = "\n" if entry.raw and entry.raw[-1].endswith("\n") else ""
    new_text = text[:start] + new_clients + text[end:].rstrip("\r\n") + newline
    return Edit(entry.path, entry.line, entry.end_line, entry.raw, (new_text,))


def allow_line(address: str, comment: str) -> str:
    """A hosts.allow entry that lets `address` reach sshd whatever hosts.deny says.

    The comment gets a line of its own: libwrap reads `#` only at the start of a line.
    """
    pattern = f"[{address}]" if ":" in address else address
    return f"# {comment}\nsshd: {pattern}\n"


def apply_edits(content: str, edits: Sequence[Edit]) -> str:
    """`content` with `edits` made; raises ValueError when a line no longer reads as expected."""
    lines = content.splitlines(keepends=True)
    for edit in sorted(edits, key=lambda e: e.line, reverse=True):
        current = tuple(lines[edit.line - 1 : edit.end_line])
        if current != edit.old:
            raise ValueError(f"{edit.path}:{edit.line} changed since it was read")
        lines[edit.line - 1 : edit.end_line] = list(edit.new)
    return "".join(lines)


def prepend(content: str, line: str) -> str:
    """`line` before the first entry (after the leading comment block), so it is seen first."""
    lines = content.splitlines(keepends=True)
    at = 0
    while at < len(lines) and (lines[at].startswith("#") or not lines[at].strip()):
        at += 1
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    lines.insert(at, line)
    return "".join(lines)
