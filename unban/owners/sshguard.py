"""sshguard as an owner: the lines of its BLACKLIST_FILE that block an address at every start.

sshguard 2.4 (/usr/sbin/sshguard, a shell script) sources /etc/sshguard/sshguard.conf and runs
`sshg-blocker -a THRESHOLD -b [THRESHOLD:]BLACKLIST_FILE -w WHITELIST ...`, which prints
block/release commands to its backend (/usr/libexec/sshguard/sshg-fw-*). The kernel entry a
block makes (nft set `attackers` in `table ip sshguard`, ipsets sshguard4/6, iptables chain
sshguard, or the hosts.allow block between `###sshguard###` markers) is lifted by the existing
layers (owner "sshguard"). What remains is the blacklist: `EPOCH|SERVICE|4or6|ADDR` lines, read
at start and blocked again then. This owner takes the address's lines out through the change
set (`ChangeSet.write`: backed up and journaled first), so undo takes out only that edit.

The running blocker's own `-b`/`-w` (from /proc/PID/cmdline) win over the config file: they are
what is in effect. sshguard keeps its blacklist open for appending; after the file is replaced
a running sshguard appends to the old one until it restarts (`unban me` restarts it for the
whitelist anyway: unban.exemptions.sshguard).
"""

from __future__ import annotations

import ipaddress
import os
import shlex
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import Optional

from unban.address import Network, parse_network
from unban.errors import LayerError, RuleChangedError
from unban.layers import Listing, ListQuery
from unban.model import Batch, Finding, LayerStatus, Step
from unban.procfs import read_text, running, stat_fields
from unban.reverter import DEFAULT_STATE_DIR, ChangeSet, Reverter, batch_change_set

LAYER = "sshguard"
CONF = "/etc/sshguard/sshguard.conf"
PROGRAM = "/usr/sbin/sshguard"
BLOCKER = "sshg-blocker"
FILE_KIND = "sshguard-blacklist"
ALWAYS_WHITE = ("127.0.0.0/8", "::1/128")  # sshg-blocker whitelists these itself


@dataclass(frozen=True)
class SshguardConfig:
    """What sshguard uses here: the config file's values, overridden by a running blocker's."""

    conf_path: str
    installed: bool
    backend: str = ""
    blacklist: Optional[str] = None  # the BLACKLIST_FILE path
    whitelist_file: Optional[str] = None
    whitelist_entries: tuple[str, ...] = ()  # `-w ADDRESS` given as addresses, not files
    pid: Optional[int] = None  # the running sshg-blocker
    started: Optional[float] = None  # when it started (epoch seconds)


# ---------------------------------------------------------------- reading (pure parts)


def parse_conf(text: str) -> dict[str, str]:
    """sshguard.conf's `NAME=VALUE` assignments (a shell file: quotes as sh reads them)."""
    values: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        name, _, value = line.partition("=")
        if not name.isidentifier():
            continue
        try:
            words = shlex.split(value, comments=True)
        except ValueError:
            continue
        values[name] = " ".join(words)
    return values


def blacklist_path(value: str) -> str:
    """`-b [THRESHOLD:]PATH` / BLACKLIST_FILE: the path."""
    head, sep, tail = value.partition(":")
    return tail if sep and head.isdigit() else value


def blocker_options(argv: Sequence[str]) -> dict[str, list[str]]:
    """sshg-blocker's options as getopt reads them: {"b": [...], "w": [...], ...}."""
    options: dict[str, list[str]] = {}
    index = 1
    while index < len(argv):
        word = argv[index]
        if not word.startswith("-") or len(word) < 2:
            break
        letter = word[1]
        if len(word) > 2:
            value = word[2:]
        else:
            index += 1
            value = argv[index] if index < len(argv) else ""
        options.setdefault(letter, []).append(value)
        index += 1
    return options


def whitelist_entries(text: str) -> list[tuple[int, str]]:
    """(line number, entry) of a whitelist file, as sshg-blocker reads it: lines starting
    with # or empty are skipped, and an entry ends at the first space, tab or #."""
    out = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line or line.startswith("#"):
            continue
        entry = line
        for stop in (" ", "\t", "#"):
            entry = entry.split(stop, 1)[0]
        if entry:
            out.append((number, entry))
    return out


def covers(entry: str, target: Network) -> bool:
    try:
        network = ipaddress.ip_network(entry, strict=False)
    except ValueError:
        return False  # a host name: sshguard resolves it at start; unban does not guess
    return network.version == target.version and target.subnet_of(network)  # type: ignore[arg-type]


@dataclass(frozen=True)
class BlacklistLine:
    number: int
    text: str  # the line without its newline
    address: str
    family: str


def _blocked_at(line: BlacklistLine) -> Optional[float]:
    """When sshguard blocked the address: the line's EPOCH field."""
    epoch = line.text.split("|", 1)[0].strip()
    return float(epoch) if epoch.isdigit() else None


def blacklist_lines(text: str) -> list[BlacklistLine]:
    """`EPOCH|SERVICE|4or6|ADDR` lines (malformed ones are skipped, as sshguard skips them)."""
    out = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line or line[0].isspace() or line.startswith("#"):
            continue
        parts = line.split("|")
        if len(parts) != 4 or parts[2] not in ("4", "6"):
            continue
        try:
            int(parts[0])
            int(parts[1])
        except ValueError:
            continue
        address = parts[3].strip()
        if parse_network(address) is None:
            continue
        out.append(BlacklistLine(number, line, address, "ipv4" if parts[2] == "4" else "ipv6"))
    return out


def without_lines(text: str, numbers: Sequence[int], expected: Sequence[str]) -> str:
    """`text` without lines `numbers` (1-based), which must still read `expected`; else
    ValueError (the file changed since it was read)."""
    lines = text.splitlines(keepends=True)
    for number, want in zip(numbers, expected):
        if number > len(lines) or lines[number - 1].rstrip("\n") != want:
            raise ValueError(f"line {number} is no longer {want!r}")
    drop = set(numbers)
    return "".join(line for index, line in enumerate(lines, start=1) if index not in drop)


def with_lines(text: str, lines: Sequence[str]) -> str:
    """`text` with `lines` appended (those not in it already), for undo."""
    present = set(text.splitlines())
    out = text if not text or text.endswith("\n") else text + "\n"
    return out + "".join(f"{line}\n" for line in lines if line not in present)


# ---------------------------------------------------------------- reading the system


def _started(pid: int, proc: str) -> Optional[float]:
    """When process `pid` started (epoch seconds, to the clock tick): its start in ticks since
    boot plus the boot time from CLOCK_BOOTTIME. /proc/stat's `btime` is whole seconds, up to
    1 s early, which made a whitelist written just before a restart look newer than the
    restart (0.72 s on one machine: a restart within that read as stale)."""
    fields = stat_fields(pid, proc)
    if fields is None or len(fields) <= 19 or not fields[19].isdigit():
        return None
    ticks = int(fields[19])
    booted = time.time() - time.clock_gettime(time.CLOCK_BOOTTIME)
    return booted + ticks / os.sysconf("SC_CLK_TCK")


def read_config(conf_path: str = CONF, proc: str = "/proc") -> SshguardConfig:
    text = read_text(conf_path)
    blocker = running(BLOCKER, proc)
    installed = text is not None or os.path.exists(PROGRAM) or blocker is not None
    values = parse_conf(text or "")
    blacklist = blacklist_path(values["BLACKLIST_FILE"]) if values.get("BLACKLIST_FILE") else None
    whitelist_args = values.get("WHITELIST_ARG", "").split()
    if not whitelist_args and values.get("WHITELIST_FILE"):
        whitelist_args = [values["WHITELIST_FILE"]]
    pid = started = None
    if blocker is not None:
        pid, argv = blocker
        started = _started(pid, proc)
        options = blocker_options(argv)
        blacklist = blacklist_path(options["b"][-1]) if options.get("b") else None
        whitelist_args = options.get("w", [])
    files = [w for w in whitelist_args if w.startswith("/") or os.path.isfile(w)]
    entries = tuple(w for w in whitelist_args if w not in files)
    return SshguardConfig(
        conf_path=conf_path,
        installed=installed,
        backend=values.get("BACKEND", ""),
        blacklist=blacklist,
        whitelist_file=files[-1] if files else None,
        whitelist_entries=entries,
        pid=pid,
        started=started,
    )


# ---------------------------------------------------------------- the owner


class SshguardOwner:
    """The owner layer "sshguard": its blacklist file's lines for the address."""

    name = LAYER

    def __init__(
        self,
        conf_path: str = CONF,
        *,
        proc: str = "/proc",
        state_dir: str = DEFAULT_STATE_DIR,
        change_set: Optional[ChangeSet] = None,
    ) -> None:
        self.conf_path = conf_path
        self.proc = proc
        self.state_dir = state_dir
        self.change_set = change_set  # unban me's change set; None: one per batch
        self._own: dict[Batch, str] = {}

    def config(self) -> SshguardConfig:
        return read_config(self.conf_path, self.proc)

    def status(self) -> list[LayerStatus]:
        config = self.config()
        if not config.installed:
            return [LayerStatus(LAYER, False, "sshguard is not installed")]
        running = f"running (pid {config.pid})" if config.pid else "not running"
        kept = f"blacklist {config.blacklist}" if config.blacklist else "no BLACKLIST_FILE"
        return [LayerStatus(LAYER, True, f"{running}; {kept}")]

    def listings(self, query: ListQuery) -> list[Listing]:
        return []

    def find(self, target: Network) -> list[Finding]:
        config = self.config()
        if not config.blacklist:
            return []
        text = read_text(config.blacklist)
        if text is None:
            return []
        found = []
        for line in blacklist_lines(text):
            network = parse_network(line.address)
            if network is None or network.version != target.version:
                continue
            if not network.subnet_of(target):  # type: ignore[arg-type]
                continue
            found.append(
                Finding(
                    layer=LAYER,
                    backend="blacklist",
                    family=line.family,
                    table=config.blacklist,
                    chain=None,
                    line=line.number,
                    handle=None,
                    rule=line.text,
                    verdict="block at every start",
                    owner="sshguard",
                    network=line.address,
                    targeted=True,
                    source=f"{config.blacklist}:{line.number}",
                    banned_at=_blocked_at(line),
                )
            )
        return found

    def plan(self, findings: Sequence[Finding]) -> list[Batch]:
        by_file: dict[str, list[Finding]] = {}
        for finding in findings:
            by_file.setdefault(finding.table, []).append(finding)
        batches = []
        for path, mine in by_file.items():
            mine.sort(key=lambda f: f.line or 0)
            steps = tuple(
                Step(
                    f,
                    f"sed -i {shlex.quote(str(f.line) + 'd')} {shlex.quote(path)}",
                    f"echo {shlex.quote(f.rule)} >> {shlex.quote(path)}",
                )
                for f in mine
            )
            payload = tuple((f.line, f.rule) for f in mine)
            batches.append(Batch(LAYER, path, steps, payload, payload))
        return batches

    def apply(self, batch: Batch) -> None:
        path = batch.scope
        text = read_text(path)
        if text is None:
            raise RuleChangedError(LAYER, f"{path} is gone; run unban again")
        try:
            new = without_lines(text, [n for n, _ in batch.payload], [t for _, t in batch.payload])
        except ValueError as exc:
            raise RuleChangedError(
                LAYER, f"{path}: {exc}; nothing was changed. Run unban again"
            ) from None
        self._write(batch, path, new, f"sshguard: take lines out of {path}")

    def revert(self, batch: Batch) -> None:
        """Put the lines back: its own change set rolled back (unban's edit taken out), or,
        inside a run's change set (which `unban undo` restores by itself), the lines added
        again through that change set."""
        change_id = self._own.pop(batch, None)
        if change_id is not None:
            Reverter(self.state_dir).rollback(change_id)
            return
        path = batch.scope
        text = read_text(path) or ""
        new = with_lines(text, [t for _, t in batch.undo_payload])
        if new != text:
            self._write(batch, path, new, f"sshguard: put lines back into {path}")

    def _write(self, batch: Batch, path: str, text: str, description: str) -> None:
        """Through a change set (`ChangeSet.write`: backed up and journaled before it changes):
        the run's, or one of its own that `revert` rolls back."""
        kept = partial(self._own.__setitem__, batch)
        data = text.encode("utf-8", errors="surrogateescape")
        try:
            with batch_change_set(self.change_set, self.state_dir, description, kept) as change_set:
                change_set.write(path, data, kind=FILE_KIND)
        except OSError as exc:
            raise LayerError(LAYER, f"could not write {path}: {exc.strerror or exc}") from None
