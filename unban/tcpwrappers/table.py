"""hosts.allow / hosts.deny parsed into entries the way libwrap reads them, and one client
pattern taken out of an entry with everything else kept (pure)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Optional

SSHGUARD_MARKER = "###sshguard###"

_SEP = re.compile(r"[, \t\r\n]+")
WHITESPACE = " \t\r\n"


@dataclass(frozen=True)
class Entry:
    """One access rule as libwrap reads it.

    `line` is the first physical line of the entry (1-based) and `end_line` its last one (they
    differ when backslashes continue it); `raw` holds those physical lines exactly as in the file,
    so an editor can replace just them. `text` is the joined logical line.
    """

    path: str
    line: int
    end_line: int
    raw: tuple[str, ...]
    text: str
    daemons: str
    clients: str
    options: Optional[str]  # everything after the second ':' (libwrap keeps the newline)
    owner: str = ""  # "sshguard" between sshguard's markers

    @property
    def daemon_tokens(self) -> list[str]:
        return _tokens(self.daemons)

    @property
    def client_tokens(self) -> list[str]:
        return _tokens(self.clients)

    def location(self) -> str:
        span = f"{self.line}" if self.end_line == self.line else f"{self.line}-{self.end_line}"
        return f"{self.path}:{span}"

    def display(self) -> str:
        return self.text.rstrip("\n")


@dataclass(frozen=True)
class Skipped:
    """A non-comment line libwrap ignores (it only logs a warning)."""

    path: str
    line: int
    text: str
    reason: str


@dataclass(frozen=True)
class Table:
    path: str
    entries: tuple[Entry, ...]
    skipped: tuple[Skipped, ...] = ()
    present: bool = True


def parse_table(text: str, path: str) -> Table:
    """Parse one access-control file."""
    entries: list[Entry] = []
    skipped: list[Skipped] = []
    in_sshguard = False
    for first, last, raw, logical in _logical_lines(text):
        stripped = logical.rstrip("\n")
        if stripped.startswith(SSHGUARD_MARKER):
            in_sshguard = not in_sshguard
        if logical.startswith("#") or not logical.strip(WHITESPACE):
            continue
        split = split_at(logical, ":")
        if split is None:
            skipped.append(Skipped(path, first, stripped, 'missing ":" separator'))
            continue
        daemons, rest = split
        split = split_at(rest, ":")
        clients, options = (rest, None) if split is None else split
        entries.append(
            Entry(
                path=path,
                line=first,
                end_line=last,
                raw=tuple(raw),
                text=logical,
                daemons=daemons,
                clients=clients,
                options=options,
                owner="sshguard" if in_sshguard else "",
            )
        )
    return Table(path, tuple(entries), tuple(skipped))


def _logical_lines(text: str) -> Iterator[tuple[int, int, list[str], str]]:
    """(first line, last line, physical lines, joined text) like libwrap's xgets()."""
    physical = text.splitlines(keepends=True)
    index = 0
    while index < len(physical):
        first = index
        raw: list[str] = []
        joined = ""
        while index < len(physical):
            line = physical[index]
            raw.append(line)
            index += 1
            if line.endswith("\\\n"):
                joined += line[:-2]
                continue
            joined += line
            break
        yield first + 1, index, raw, joined


def split_at(text: str, delimiter: str) -> Optional[tuple[str, str]]:
    """libwrap's split_at(): the first delimiter outside [brackets]."""
    depth = 0
    for i, ch in enumerate(text):
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
        elif depth == 0 and ch == delimiter:
            return text[:i], text[i + 1 :]
    return None


def _tokens(text: str) -> list[str]:
    return [t for t in _SEP.split(text) if t]


def remove_client(entry: Entry, token: str) -> Optional[tuple[str, ...]]:
    """The entry's physical lines with one client pattern taken out, everything else kept.

    Returns () when `token` was the entry's only client pattern (delete the entry's lines), and
    None when it cannot be done safely: the pattern is not in the client list, or only after an
    EXCEPT (removing it there would widen what the entry matches).
    """
    # Map each character of the logical line to (physical line, column).
    positions: list[tuple[int, int]] = []
    for number, raw in enumerate(entry.raw):
        body = raw[:-2] if raw.endswith("\\\n") else raw
        positions.extend((number, column) for column in range(len(body)))
    split = split_at(entry.text, ":")
    if split is None:
        return None
    start = len(split[0]) + 1
    clients = entry.clients
    spans = [(m.start() + start, m.end() + start) for m in re.finditer(r"[^, \t\r\n]+", clients)]
    words = [entry.text[a:b] for a, b in spans]
    except_at = next((i for i, w in enumerate(words) if w.upper() == "EXCEPT"), len(words))
    index = next((i for i, w in enumerate(words[:except_at]) if w == token), None)
    if index is None:
        return None
    if except_at == 1:  # the only pattern before EXCEPT (or at all): the entry goes
        return ()
    # Take the pattern and the separators after it (or, for the last one, before it).
    first, last = spans[index]
    if index + 1 < len(spans):
        last = spans[index + 1][0]
    else:
        first = spans[index - 1][1]
    lines = [list(raw) for raw in entry.raw]
    for line_number, column in sorted((positions[i] for i in range(first, last)), reverse=True):
        del lines[line_number][column]
    return tuple("".join(chars) for chars in lines)
