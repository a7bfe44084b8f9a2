"""The daemons running beside unban, read from /proc, and the small text files they keep."""

from __future__ import annotations

import os
from typing import Optional


def ours(pid: int, proc: str = "/proc") -> bool:
    """Process `pid` sees the same /etc and network as this one (same mount and network
    namespaces): a daemon in another namespace is configured by another /etc."""
    try:
        return all(
            os.readlink(f"{proc}/{pid}/ns/{kind}") == os.readlink(f"{proc}/self/ns/{kind}")
            for kind in ("mnt", "net")
        )
    except OSError:
        return False


def running(program: str, proc: str = "/proc") -> Optional[tuple[int, list[str]]]:
    """The pid and argv of a running process whose argv[0] is `program` (its base name), in
    our namespaces; None when there is none."""
    try:
        names = os.listdir(proc)
    except OSError:
        return None
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(f"{proc}/{name}/cmdline", "rb") as handle:
                raw = handle.read()
        except OSError:
            continue  # it ended while we looked
        argv = [part.decode(errors="replace") for part in raw.split(b"\0") if part]
        if argv and os.path.basename(argv[0]) == program and ours(int(name), proc):
            return int(name), argv
    return None


def stat_fields(pid: int, proc: str = "/proc") -> Optional[list[str]]:
    """The fields of /proc/PID/stat after the command name (state, ppid, ... as in proc(5),
    from index 0), or None when the process is gone."""
    try:
        with open(f"{proc}/{pid}/stat", encoding="utf-8", errors="replace") as handle:
            text = handle.read()
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()


def process_tree(pid: int, proc: str = "/proc") -> dict[int, str]:
    """Process `pid` and every process descended from it, each with its start time (ticks
    since boot), so that a pid used again later is not taken for one of them."""
    parents: dict[int, int] = {}
    started: dict[int, str] = {}
    for name in os.listdir(proc):
        fields = stat_fields(int(name), proc) if name.isdigit() else None
        if fields is not None and len(fields) > 19:
            parents[int(name)] = int(fields[1])
            started[int(name)] = fields[19]
    tree = {pid} if pid in started else set()
    grew = True
    while grew:
        grown = {child for child, parent in parents.items() if parent in tree} - tree
        tree |= grown
        grew = bool(grown)
    return {member: started[member] for member in tree}


def still_running(tree: dict[int, str], proc: str = "/proc") -> list[int]:
    """The members of a `process_tree` that have not exited yet."""
    alive = []
    for pid, start in tree.items():
        fields = stat_fields(pid, proc)
        if fields is not None and len(fields) > 19 and fields[19] == start and fields[0] != "Z":
            alive.append(pid)
    return alive


def read_text(path: str) -> Optional[str]:
    """A config or list file's text (bytes that are not UTF-8 kept as surrogates, so writing it
    back changes nothing else); None when it is not there."""
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as handle:
            return handle.read()
    except (FileNotFoundError, NotADirectoryError):
        return None
