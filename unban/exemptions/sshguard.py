"""sshguard's exemption: the address in its WHITELIST_FILE, then sshguard restarted.

sshg-blocker reads the whitelist only at start (SIGHUP makes it exit: there is no reload), so
a running sshguard is restarted the way it was started: `systemctl restart sshguard.service`
under systemd, else Debian's `/etc/init.d/sshguard stop` and then `start`, with unban waiting in
between until every process of the old sshguard has exited. The init script's own `restart`
waits only for sshguard's shell, so the new backend can set up while the old one still tears
down: the old nft-sets backend's `nft delete table ip sshguard` then lands after the new one made
it, and nothing is blocked until the next restart (systemd waits for the whole service, as
unban does). A restart drops every block
sshguard holds at that moment and its attack counters: sshg-blocker tells its backend to flush
at exit (the nft-sets backend deletes `table ip sshguard` and `table ip6 sshguard`, the ipset
one flushes sshguard4/6, the iptables one its chain, the hosts one its hosts.allow block), and
at start only BLACKLIST_FILE's addresses are blocked again. The plan says so.

The whitelist is written through the change set (`ChangeSet.write`: backed up, journaled), and
the restart is recorded before the file changes as an EXEMPTION_KIND action naming the
whitelist as FILES_FIRST, with the blocker's pid: undo (`unban undo`, a failed run, recovery
after a kill) first takes unban's line out of the whitelist, then restarts sshguard if unban's
restart may have happened (another blocker runs now), so it reads the whitelist as it was; only
then are the older changes put back (the kernel entries a restart drops, the blacklist).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Optional

from unban.address import Network, parse_network, show
from unban.exemptions import (
    EXEMPTION_KIND,
    IGNORE,
    Command,
    ExemptionError,
    ExemptionPlan,
    ExemptionState,
    FileEdit,
)
from unban.owners.sshguard import (
    ALWAYS_WHITE,
    BLOCKER,
    CONF,
    SshguardConfig,
    covers,
    read_config,
    whitelist_entries,
)
from unban.procfs import ours, process_tree, read_text, running, stat_fields, still_running
from unban.reverter import APPLIED, FILES_FIRST, PENDING, ChangeSet
from unban.system import run

NAME = "sshguard"
FILE_KIND = "sshguard-whitelist"
SYSTEMD_RUNNING = "/run/systemd/system"
INIT_SCRIPT = "/etc/init.d/sshguard"
RESTART_WAIT = 15.0  # seconds for the restarted sshguard's blocker to be up

DROPS = {
    "sshg-fw-nft-sets": "its nft-sets backend deletes table ip sshguard and table ip6 sshguard "
    "at exit and makes them again, empty, at start",
    "sshg-fw-ipset": "its ipset backend flushes ipsets sshguard4 and sshguard6 at exit",
    "sshg-fw-iptables": "its iptables backend flushes its sshguard chains at exit",
    "sshg-fw-hosts": "its hosts backend empties its ###sshguard### block of hosts.allow at exit",
}


def restart_commands() -> tuple[tuple[str, ...], ...]:
    """How this host restarts sshguard (unban waits for the old processes to exit after each
    command but the last); empty when unban does not know."""
    if os.path.isdir(SYSTEMD_RUNNING):
        return (("systemctl", "restart", "sshguard.service"),)
    if os.access(INIT_SCRIPT, os.X_OK):
        return ((INIT_SCRIPT, "stop"), (INIT_SCRIPT, "start"))
    return ()


def restart_cost(config: SshguardConfig) -> str:
    backend = os.path.basename(config.backend) if config.backend else ""
    how = DROPS.get(backend, "sshg-blocker tells its backend to flush at exit")
    kept = (
        f"only the addresses in {config.blacklist} are blocked again at start"
        if config.blacklist
        else "nothing is blocked again at start (no BLACKLIST_FILE)"
    )
    return (
        "restarting sshguard drops every block it holds now and its attack counters "
        f"({how}); {kept}"
    )


class SshguardExemption:
    name = NAME

    def __init__(
        self, conf_path: str = CONF, *, proc: str = "/proc", require_running: bool = True
    ) -> None:
        self.conf_path = conf_path
        self.proc = proc
        self.require_running = require_running

    def _present(self, config: SshguardConfig) -> bool:
        """Installed, and (unless asked by name) running here: a stopped sshguard bans nobody,
        and its config may not be this host's to change."""
        return config.installed and (not self.require_running or config.pid is not None)

    def config(self) -> SshguardConfig:
        return read_config(self.conf_path, self.proc)

    def _listed(self, config: SshguardConfig, target: Network) -> str:
        """Where the whitelist holds `target` ("" when it does not)."""
        for entry in (*ALWAYS_WHITE, *config.whitelist_entries):
            if covers(entry, target):
                return f"-w {entry}" if entry not in ALWAYS_WHITE else f"always ({entry})"
        if config.whitelist_file:
            for number, entry in whitelist_entries(read_text(config.whitelist_file) or ""):
                if covers(entry, target):
                    return f"{config.whitelist_file} line {number} ({entry})"
        return ""

    def _stale(self, config: SshguardConfig) -> bool:
        """The running sshguard started before its whitelist file last changed."""
        if config.pid is None or config.started is None or not config.whitelist_file:
            return False
        try:
            changed = os.stat(config.whitelist_file).st_mtime
        except FileNotFoundError:
            return False
        return changed > config.started

    def state(self, target: Network) -> ExemptionState:
        config = self.config()
        if not config.installed:
            return ExemptionState(NAME, False, False, "sshguard is not installed")
        if not self._present(config):
            return ExemptionState(NAME, False, False, "sshguard is not running here")
        where = self._listed(config, target)
        if not where:
            return ExemptionState(NAME, True, False, "not in its whitelist")
        if self._stale(config):
            return ExemptionState(
                NAME, True, False, f"in {where}, but the running sshguard started before that"
            )
        return ExemptionState(NAME, True, True, f"whitelisted: {where}")

    def plan(self, operation: str, target: Network) -> Optional[ExemptionPlan]:
        config = self.config()
        if not self._present(config):
            return None
        address = show(target)
        path = config.whitelist_file
        if path is None:
            return ExemptionPlan(
                NAME,
                operation,
                address,
                notes=(
                    f"sshguard has no WHITELIST_FILE: set WHITELIST_FILE=/etc/sshguard/whitelist "
                    f"in {config.conf_path} and restart it; nothing changed there",
                ),
            )
        text = read_text(path)
        entries = whitelist_entries(text or "")
        if operation == IGNORE:
            listed = self._listed(config, target)
            after = None if listed else _appended(text or "", address)
            lines = [f"add {address} to {path}"] if after is not None else []
        else:
            mine = [n for n, e in entries if parse_network(e) == target]
            after = _without(text or "", mine) if mine else None
            lines = (
                [f"take {address} out of {path} (line {', '.join(map(str, mine))})"] if mine else []
            )
            listed = ""
        edits = (FileEdit(path, text, after),) if after is not None else ()
        needs_restart = config.pid is not None and (bool(edits) or self._stale(config))
        commands: tuple[Command, ...] = ()
        notes: list[str] = []
        if needs_restart:
            restart = restart_commands()
            if not restart:
                notes.append(
                    f"sshguard (pid {config.pid}) reads its whitelist only at start, and unban "
                    "does not know how it was started here: restart it yourself"
                )
            else:
                commands = tuple(Command(argv, " ".join(argv)) for argv in restart)
                lines.append(
                    f"restart sshguard (pid {config.pid}): it reads the whitelist only at start"
                )
                notes.append(restart_cost(config))
        elif config.pid is None and edits:
            notes.append("sshguard is not running: the whitelist applies when it starts")
        if operation == IGNORE and listed and not needs_restart:
            lines = []
        return ExemptionPlan(
            NAME, operation, address, edits, commands, tuple(lines), tuple(notes), payload=None
        )

    def apply(self, plan: ExemptionPlan, change_set: ChangeSet) -> list[str]:
        done = []
        restart = [list(command.argv) for command in plan.commands]
        for edit in plan.edits:
            if read_text(edit.path) != edit.before:
                raise ExemptionError(f"{edit.path} changed while unban was working; run it again")
        index = None
        if restart:
            blocker = running(BLOCKER, self.proc)
            index = change_set.record_action(
                EXEMPTION_KIND,
                source=NAME,
                restart=restart,
                blocker=blocker[0] if blocker else None,
                state=PENDING,
                summary=f"sshguard restarted for its whitelist ({plan.operation} {plan.address})",
                **{FILES_FIRST: [edit.path for edit in plan.edits]},
            )
        for edit in plan.edits:
            data = None if edit.after is None else edit.after.encode("utf-8", "surrogateescape")
            change_set.write(
                edit.path, data, mode=None if edit.before is not None else 0o644, kind=FILE_KIND
            )
            done.append(f"sshguard: wrote {edit.path}")
        if index is not None:
            _restart(restart, self.proc)
            change_set.update_action(index, state=APPLIED)
            shell = " && ".join(command.shell for command in plan.commands)
            done.append(f"sshguard: restarted ($ {shell})")
        return done

    def revert(self, action: Mapping[str, Any]) -> None:
        """Restart sshguard (the whitelist is back already) unless it never was restarted:
        the blocker recorded before the restart still runs, and read the old whitelist."""
        restart = journaled_restart(action.get("restart") or [])
        now = running(BLOCKER, self.proc)
        if not restart or now is None:
            return  # a stopped sshguard reads the whitelist when it starts
        if action.get("state") == PENDING and now[0] == action.get("blocker"):
            return
        _restart(restart, self.proc)


def _appended(text: str, address: str) -> str:
    head = text if not text or text.endswith("\n") else text + "\n"
    return f"{head}{address}\n"


def _without(text: str, numbers: Sequence[int]) -> str:
    drop = set(numbers)
    lines = text.splitlines(keepends=True)
    return "".join(line for index, line in enumerate(lines, start=1) if index not in drop)


def journaled_restart(recorded: Sequence[Any]) -> tuple[tuple[str, ...], ...]:
    """The restart commands a journal recorded (one argv list each; a single flat argv list
    is how unban 0.x recorded its one restart command)."""
    if recorded and isinstance(recorded[0], str):
        return (tuple(recorded),)
    return tuple(tuple(str(part) for part in argv) for argv in recorded)


def _old_sshguard(proc: str) -> dict[int, str]:
    """Every process of the running sshguard: the shell that started its pipeline (the
    blocker's parent) and all it started, the backend among them."""
    blocker = running(BLOCKER, proc)
    if blocker is None:
        return {}
    fields = stat_fields(blocker[0], proc)
    parent = int(fields[1]) if fields is not None else 1
    root = parent if parent > 1 and ours(parent, proc) else blocker[0]
    return process_tree(root, proc)


def _restart(commands: Sequence[Sequence[str]], proc: str) -> None:
    """Run the restart commands and wait until the old sshguard is gone and a new blocker runs
    (its backend set up again)."""
    old = _old_sshguard(proc)
    shell = " && ".join(" ".join(argv) for argv in commands)
    for argv in commands:
        run(NAME, list(argv), timeout=60)
        _wait_for(lambda: not still_running(old, proc))
    if not _wait_for(lambda: _new_blocker(old, proc)):
        left = still_running(old, proc)
        why = (
            f" (the old one's processes {', '.join(map(str, left))} had not exited)" if left else ""
        )
        raise ExemptionError(
            f"sshguard did not come back within {RESTART_WAIT:.0f} s of `{shell}`{why}"
        )
    time.sleep(0.3)  # the backend sets up its table or sets right after the blocker starts


def _new_blocker(old: Mapping[int, str], proc: str) -> bool:
    now = running(BLOCKER, proc)
    return now is not None and now[0] not in old


def _wait_for(done: Callable[[], bool]) -> bool:
    """Poll `done` for up to RESTART_WAIT seconds; whether it came true. After `stop` the start
    goes ahead even if the old sshguard outlived the wait: if its pidfile keeps the start from
    running, the wait for a new blocker fails and says so."""
    deadline = time.monotonic() + RESTART_WAIT
    while not done():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True
