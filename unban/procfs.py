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


def read_text(path: str) -> Optional[str]:
    """A config or list file's text (bytes that are not UTF-8 kept as surrogates, so writing it
    back changes nothing else); None when it is not there."""
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as handle:
            return handle.read()
    except (FileNotFoundError, NotADirectoryError):
        return None
