"""Log lines about one client address: what sshd and fail2ban wrote about refusing it.

Read from the journal (its last 24 hours) and the classic files (auth.log, secure,
fail2ban.log: their last 8 MB), or from the files a command names. `doctor` shows them;
PerSourcePenalties' state is derived from them (`unban.penalties`)."""

from __future__ import annotations

import datetime
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Optional

from unban.errors import LayerError
from unban.system import run, which


@dataclass(frozen=True)
class LogHit:
    kind: str  # maxstartups | tcpwrappers | penalty | denied-user | fail2ban-ban | fail2ban-unban | auth-failure | admitted
    line: str
    source: str


_LOG_PATTERNS = (
    # 8.x-9.x: "past MaxStartups"; 10: "drop connection #1 from [A]:P on [B]:22 Maxstartups"
    ("maxstartups", re.compile(r"maxstartups", re.IGNORECASE)),
    ("tcpwrappers", re.compile(r"refused connect from")),
    ("penalty", re.compile(r"penalty:|srclimit_penalise")),
    ("denied-user", re.compile(r"not allowed because")),
    ("fail2ban-ban", re.compile(r"\]\s+(?:Restore\s+)?Ban\s")),
    ("fail2ban-unban", re.compile(r"\]\s+Unban\s")),
    ("auth-failure", re.compile(r"Failed password|Invalid user|authentication failure")),
    # sshd let a connection in: a penalty logged before it had run out (unban.penalties)
    ("admitted", re.compile(r"Connection from \S+ port|Accepted \S+ for|closed by authenticating")),
)
BLOCKING_LOG_KINDS = ("maxstartups", "tcpwrappers", "penalty", "denied-user", "fail2ban-ban")


def address_pattern(address: str) -> re.Pattern[str]:
    """The address as a whole word in a log line (203.0.113.4 is not 203.0.113.45)."""
    if ":" in address:
        return re.compile(rf"(?<![\w:]){re.escape(address)}(?![\w:])", re.IGNORECASE)
    return re.compile(rf"(?<![\w.]){re.escape(address)}(?!\w|\.\d)")


def scan_log(
    lines: Sequence[str],
    address: str,
    source: str,
    *,
    now: Optional[datetime.datetime] = None,
    max_age: datetime.timedelta = datetime.timedelta(hours=24),
) -> list[LogHit]:
    """Log lines about `address` that tell why it was refused, oldest first. Lines with a
    time stamp (syslog, ISO, fail2ban's) older than `max_age` are left out; lines without one
    (sshd -E) are kept."""
    wanted = address_pattern(address)
    now = now or datetime.datetime.now()
    hits = []
    for line in lines:
        if address not in line and ":" not in address:
            continue
        if not wanted.search(line):
            continue
        stamp = line_time(line, now)
        if stamp is not None and now - stamp > max_age:
            continue
        for kind, pattern in _LOG_PATTERNS:
            if pattern.search(line):
                hits.append(LogHit(kind, line.rstrip(), source))
                break
    return hits


_ISO = re.compile(r"^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}:\d{2})")
_SYSLOG = re.compile(r"^([A-Z][a-z]{2})\s+(\d{1,2}) (\d{2}:\d{2}:\d{2})")


def line_time(line: str, now: datetime.datetime) -> Optional[datetime.datetime]:
    """The local time a log line starts with, if it starts with one."""
    iso = _ISO.match(line)
    if iso:
        try:
            return datetime.datetime.strptime(f"{iso.group(1)} {iso.group(2)}", "%Y-%m-%d %H:%M:%S")
        except ValueError:
            return None
    classic = _SYSLOG.match(line)
    if classic:
        try:
            stamp = datetime.datetime.strptime(
                f"{now.year} {classic.group(1)} {classic.group(2)} {classic.group(3)}",
                "%Y %b %d %H:%M:%S",
            )
        except ValueError:
            return None
        if stamp - now > datetime.timedelta(days=1):  # December's lines read in January
            stamp = stamp.replace(year=now.year - 1)
        return stamp
    return None


LOG_FILES = ("/var/log/auth.log", "/var/log/secure", "/var/log/fail2ban.log")
TAIL_BYTES = 8 * 1024 * 1024


def read_logs(address: str, files: Sequence[str]) -> tuple[list[LogHit], list[str]]:
    """Recent lines about the address: the given files, or the journal (last 24 h) and the
    classic log files (their last 8 MB)."""
    hits: list[LogHit] = []
    sources: list[str] = []
    if not files:
        journal = _journal_lines()
        if journal is not None:
            sources.append("journal (24 h)")
            hits.extend(scan_log(journal, address, "journal"))
        files = tuple(f for f in LOG_FILES if os.path.isfile(f))
    for path in files:
        lines = _tail(path)
        if lines is None:
            continue
        sources.append(path)
        hits.extend(scan_log(lines, address, path))
    return hits, sources


def _journal_lines() -> Optional[list[str]]:
    if which("journalctl") is None:
        return None
    argv = ["journalctl", "--no-pager", "-q", "-o", "short-iso", "--since=-24h"]
    for ident in ("sshd", "sshd-session", "fail2ban.actions", "fail2ban-server", "fail2ban"):
        argv += ["-t", ident]
    try:
        result = run("logs", argv, check=False, timeout=60)
    except LayerError:
        return None
    if result.returncode != 0:
        return None
    return result.stdout.splitlines()


def mtimes(paths: Sequence[str]) -> dict[str, datetime.datetime]:
    """Each log file's modification time: the latest its lines can have been written."""
    times = {}
    for path in paths:
        try:
            times[path] = datetime.datetime.fromtimestamp(os.stat(path).st_mtime)
        except OSError:
            continue
    return times


def _tail(path: str) -> Optional[list[str]]:
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - TAIL_BYTES))
            data = handle.read()
    except OSError:
        return None
    return data.decode(errors="replace").splitlines()
