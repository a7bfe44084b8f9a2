"""Taking unban's own edit out of a file that changed since unban wrote it. Pure code.

unban changed a file from `before` to `written`; someone (an admin, fail2ban's hostsdeny
action) changed it since, to `current`. `take_out` applies the reverse of unban's edit, line
by line, to `current`: every line unban's edit made must still be there, as unban wrote it
and in the same place; every line it took out goes back between the same neighbours. Lines
anyone else added, changed or removed elsewhere stay as they are. When unban's lines were
changed too, nothing is guessed: `Conflict` names them.
"""

from __future__ import annotations

from difflib import SequenceMatcher
from typing import Optional


class Conflict(Exception):
    """unban's edit cannot be taken out: the lines it made (or their neighbours) changed."""

    def __init__(self, lines: list[tuple[int, str]]) -> None:
        self.lines = lines  # (1-based line number in `written`, its text), at most a few
        shown = "; ".join(f"line {n}: {text.rstrip()!r}" for n, text in lines[:3])
        more = f" and {len(lines) - 3} more" if len(lines) > 3 else ""
        super().__init__(f"the lines unban's edit made were changed since ({shown}{more})")


def take_out(before: bytes, written: bytes, current: bytes) -> bytes:
    """`current` with unban's edit (`before` -> `written`) reversed; raise Conflict."""
    old = before.splitlines(keepends=True)
    new = written.splitlines(keepends=True)
    now = current.splitlines(keepends=True)
    where = _positions(new, now)
    hunks = [
        op
        for op in SequenceMatcher(None, new, old, autojunk=False).get_opcodes()
        if op[0] != "equal"
    ]
    changes: list[tuple[int, int, list[bytes]]] = []
    conflicts: list[tuple[int, str]] = []
    for _tag, n1, n2, o1, o2 in hunks:
        span = _span(where, n1, n2)
        if span is None:
            numbers = range(n1, n2) if n2 > n1 else range(max(0, n1 - 1), min(len(new), n1 + 1))
            conflicts += [(i + 1, new[i].decode("utf-8", "replace")) for i in numbers]
            if not numbers:
                conflicts.append((n1 + 1, ""))
            continue
        changes.append((span[0], span[1], old[o1:o2]))
    if conflicts:
        raise Conflict(conflicts)
    for start, end, lines in sorted(changes, reverse=True):
        now[start:end] = lines
    return b"".join(now)


def _positions(new: list[bytes], now: list[bytes]) -> dict[int, int]:
    """Where each line of `new` is in `now`, for the lines still there (a longest match)."""
    where: dict[int, int] = {}
    for a, b, size in SequenceMatcher(None, new, now, autojunk=False).get_matching_blocks():
        for k in range(size):
            where[a + k] = b + k
    return where


def _span(where: dict[int, int], n1: int, n2: int) -> Optional[tuple[int, int]]:
    """The lines of `now` that lines n1..n2 of `new` became, or None when they changed.

    A deletion of nothing (n1 == n2: unban took lines out there) is placed right after the
    line before it, which must still be there (at the top: before the first line)."""
    if n2 > n1:
        spots = [where.get(i) for i in range(n1, n2)]
        if any(s is None for s in spots):
            return None
        first = spots[0]
        assert first is not None
        if spots != list(range(first, first + len(spots))):
            return None
        return first, first + len(spots)
    if n1 == 0:
        following = where.get(0)
        return (following, following) if following is not None else (0, 0)
    previous = where.get(n1 - 1)
    if previous is None:
        return None
    return previous + 1, previous + 1
