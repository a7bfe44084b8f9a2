"""`unban ignore` / `unban unignore`: an address in (or out of) every jail's effective ignoreip.

Where to write, for each jail that does not ignore the address yet (pure, `plan_edits`):
- the definition that wins for the jail (its own `ignoreip`, else [DEFAULT]'s) is in a `.local`
  file: append the address to that very definition, in place;
- it is in a `.conf` file (jail.conf, jail.d/*.conf: package files, never edited): override it in
  jail.local, keeping its entries: `[JAIL] ignoreip = %(known/ignoreip)s ADDR` (fail2ban's name
  for the value being overridden), or for [DEFAULT] a copy of the old value plus ADDR;
- nothing sets ignoreip: `[DEFAULT] ignoreip = ADDR` in jail.local (`[JAIL]` with --jail).
With --jail, a [DEFAULT] definition other jails share is never changed: the jail gets its own.

Edits go through configupdater on the option's own lines, so comments, continuation lines and
the order of everything survive. Every planned result is re-read as fail2ban reads it before a
byte is written, and after writing, `fail2ban-client -d` (fail2ban's own parser) must agree.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Optional

from unban.address import Network
from unban.errors import InputError, UnbanError
from unban.fail2ban import LAYER
from unban.fail2ban.client import Client, ServerNotRunning, client_command
from unban.fail2ban.config import (
    INCLUDES,
    Tree,
    fail2ban_view,
    read_tree,
    server_paths,
    splitwords,
    static_values,
)
from unban.fail2ban.ignorelist import (
    covering,
    entry_network,
    exact,
    spelling,
)
from unban.reverter import ChangeSet, Reverter
from unban.signals import DeferredSignals
from unban.system import which

if TYPE_CHECKING:  # the planner is imported by `plan`: find's ignored_in reads only
    from unban.fail2ban.ignoreplan import IgnorePlan

IGNORE_KIND = "fail2ban-ignoreip"


class IgnoreError(UnbanError):
    """The ignoreip change could not be made or checked; says what was put back."""


# ---------------------------------------------------------------- safety of writes


def refusal(path: str, confdir: str) -> Optional[str]:
    """Why a root tool must not write `path` (or create it), or None."""
    confdir_real = os.path.realpath(confdir)
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        info = None
    if info is not None and stat.S_ISLNK(info.st_mode):
        real = os.path.realpath(path)
        if os.path.commonpath([real, confdir_real]) != confdir_real:
            return (
                f"{path} is a symlink to {real}, outside {confdir}: refused (a root tool must "
                "not write through a link it does not control)"
            )
    real = os.path.realpath(path)
    if info is not None:
        target = os.stat(real)
        if not stat.S_ISREG(target.st_mode):
            return f"{path} is not a regular file: refused"
        if target.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            return (
                f"{path} is writable by group or others (mode {stat.S_IMODE(target.st_mode):04o}):"
                " refused (a root tool must not act on a file others can change; "
                f"chmod go-w {path} first)"
            )
    directory = os.path.dirname(real)
    try:
        dir_info = os.stat(directory)
    except FileNotFoundError:
        return f"{directory} does not exist"
    if dir_info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return (
            f"{directory} is writable by group or others (mode {stat.S_IMODE(dir_info.st_mode):04o}):"
            " refused (a root tool must not write where others can swap files)"
        )
    return None


# ---------------------------------------------------------------- live server


def _live_state(
    socket_path: str, jails: Sequence[str], restricted: bool
) -> Optional[dict[str, list[str]]]:
    """Running jails (restricted to `jails` when asked) and their live ignoreip, or None."""
    try:
        with Client(socket_path) as client:
            status = client.call(["status"])
            names = _jail_list(status)
            if restricted:
                names = [j for j in names if j in jails]
            return {j: [str(e) for e in client.call(["get", j, "ignoreip"])] for j in names}
    except ServerNotRunning:
        return None


def _jail_list(status: Any) -> list[str]:
    for key, value in status or []:
        if key == "Jail list":
            return [j for j in splitwords(str(value).replace(",", " ")) if j]
    return []


def undo_live(action: Mapping[str, Any]) -> None:
    """Rollback handler for IGNORE_KIND actions."""
    socket_path = str(action["socket"])
    jail = str(action["jail"])
    ip = str(action["ip"])
    op = str(action["op"])
    try:
        with Client(socket_path) as client:
            names = _jail_list(client.call(["status"]))
            if jail not in names:
                return
            live = [str(e) for e in client.call(["get", jail, "ignoreip"])]
            present = any(entry_network(e) == entry_network(ip) for e in live)
            if op == "add" and present:
                client.call(["set", jail, "delignoreip", ip])
            elif op == "del" and not present:
                client.call(["set", jail, "addignoreip", ip])
    except ServerNotRunning:
        return  # nothing live to undo; the restored config applies at the next start


# ---------------------------------------------------------------- operations


@dataclass
class IgnoreResult:
    plan: IgnorePlan
    change_set: Optional[str] = None
    verified: str = ""
    applied: list[str] = field(default_factory=list)


def _target_jails(tree: Tree, wanted: Sequence[str]) -> list[str]:
    names = [j for j in tree.jails() if j not in ("DEFAULT", INCLUDES)]
    if wanted:
        unknown = [j for j in wanted if j not in names]
        if unknown:
            enabled = [j for j in names if tree.enabled(j)]
            others = len(names) - len(enabled)
            raise InputError(
                f"no jail {', '.join(unknown)} in {tree.confdir} (enabled jails: "
                f"{', '.join(enabled) or 'none'}"
                + (f"; {others} more defined, not enabled)" if others else ")")
            )
        return list(dict.fromkeys(wanted))
    return [j for j in names if tree.enabled(j)]


def ignored_in(
    confdir: str, target: Network, wanted: Sequence[str] = ()
) -> list[tuple[str, Optional[str]]]:
    """Each enabled jail (or each of `wanted`) and the entry of its effective ignoreip that
    covers `target` (None: it is not ignored there). Reads only."""
    tree = read_tree(confdir, "jail")
    return [
        (jail, covering(splitwords(tree.get(jail, "ignoreip", static_values(tree))), target))
        for jail in _target_jails(tree, wanted)
    ]


def plan(
    operation: str, confdir: str, target: Network, wanted: Sequence[str], *, live: bool = True
) -> IgnorePlan:
    """What `unban ignore|unignore` would change (reads only)."""
    from unban.fail2ban.ignoreplan import (
        FileEdit,
        IgnorePlan,
        LiveChange,
        plan_edits,
        plan_removals,
    )

    if not os.path.isdir(confdir):
        raise InputError(f"no fail2ban config dir {confdir} (use --fail2ban-conf DIR)")
    tree = read_tree(confdir, "jail")
    jails = _target_jails(tree, wanted)
    restricted = bool(wanted)

    def refuse(path: str) -> Optional[str]:
        return refusal(path, confdir)

    planner = plan_edits if operation == "ignore" else plan_removals
    texts, states, notes = planner(tree, jails, target, restricted=restricted, refuse=refuse)
    if texts:
        after = read_tree(confdir, "jail", texts)
        _check_result(operation, after, jails, target, "unban's planned edit")
    edits = tuple(
        FileEdit(path, _read_or_none(path), text)
        for path, text in texts.items()
        if _read_or_none(path) != text
    )
    socket_path: Optional[str] = None
    changes: list[LiveChange] = []
    if live:
        socket_path = server_paths(confdir).socket
        state = _live_state(socket_path, jails, restricted)
        if state is None:
            notes.append("fail2ban-server is not running: the config applies when it starts")
        else:
            token = spelling(target)
            for jail, entries in state.items():
                if jail not in jails and restricted:
                    continue
                if operation == "ignore" and covering(entries, target) is None:
                    command = ("set", jail, "addignoreip", token)
                    undo = ("set", jail, "delignoreip", token)
                elif operation == "unignore" and exact(entries, target):
                    command = ("set", jail, "delignoreip", exact(entries, target)[0])
                    undo = ("set", jail, "addignoreip", exact(entries, target)[0])
                else:
                    continue
                changes.append(LiveChange(jail, command, undo, client_command(command, confdir)))
    return IgnorePlan(
        operation=operation,
        address=spelling(target),
        confdir=confdir,
        jails=tuple(states),
        edits=edits,
        live=tuple(changes),
        notes=tuple(notes),
        socket=socket_path,
    )


def _read_or_none(path: str) -> Optional[str]:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def _check_result(
    operation: str, tree: Tree, jails: Sequence[str], target: Network, who: str
) -> None:
    wrong = []
    for jail in jails:
        entries = splitwords(tree.get(jail, "ignoreip", static_values(tree)))
        if operation == "ignore" and covering(entries, target) is None:
            wrong.append(jail)
    if wrong:
        raise IgnoreError(
            f"{who} would leave {target} out of the ignoreip of {', '.join(wrong)}; nothing changed"
        )


def apply(plan_: IgnorePlan, reverter: Reverter, target: Network) -> IgnoreResult:
    """Write the edits (backed up first), check with fail2ban's own parser, then go live."""
    result = IgnoreResult(plan_)
    if plan_.is_empty():
        return result

    change_set = reverter.begin(
        f"{plan_.operation} {plan_.address} (fail2ban ignoreip)", kind=plan_.operation
    )
    result.change_set = change_set.id
    try:
        with DeferredSignals() as signals:
            apply_into(plan_, change_set, target, result, check=signals.check)
    except BaseException as exc:
        try:
            change_set.rollback({IGNORE_KIND: undo_live})
        except UnbanError as undo_exc:
            raise IgnoreError(
                f"{exc}; putting things back failed too: {undo_exc}. Backups are in "
                f"{change_set.path}"
            ) from exc
        if isinstance(exc, UnbanError):
            raise IgnoreError(
                f"{exc}; change set {change_set.id} was rolled back, nothing changed"
            ) from exc
        raise
    change_set.finalize()
    return result


def apply_into(
    plan_: IgnorePlan,
    change_set: ChangeSet,
    target: Network,
    result: Optional[IgnoreResult] = None,
    *,
    check: Callable[[], None] = lambda: None,
) -> IgnoreResult:
    """Write the edits into `change_set` (backups first), check them with fail2ban's own
    parser, go live (each live change recorded as an IGNORE_KIND action). No rollback here: on
    a failure the caller rolls `change_set` back (`apply`, or `unban me` with its other
    changes). `check` runs between the steps (deferred signals)."""
    result = result or IgnoreResult(plan_, change_set.id)
    _write_edits(plan_, change_set)
    check()
    result.verified = _verify(plan_, target)
    check()
    _go_live(plan_, change_set, result)
    check()
    return result


def _write_edits(plan_: IgnorePlan, change_set: ChangeSet) -> None:
    for edit in plan_.edits:
        why = refusal(edit.path, plan_.confdir)
        if why:
            raise InputError(why)
        if _read_or_none(edit.path) != edit.before:
            raise IgnoreError(f"{edit.path} changed while unban was working; run it again")
        change_set.write(
            edit.path, edit.after.encode("utf-8"), mode=None if edit.before is not None else 0o644
        )


def _verify(plan_: IgnorePlan, target: Network) -> str:
    """fail2ban's own parser must now see the address (ignore) or not see it (unignore)."""
    if not plan_.edits:
        return ""
    if which("fail2ban-client") is None:
        return "not checked with fail2ban-client (not installed)"
    view = fail2ban_view(plan_.confdir)
    wrong = []
    for state in plan_.jails:
        jail_view = view.get(state.jail)
        if jail_view is None:
            continue  # not enabled: fail2ban does not start it
        entries = jail_view.ignoreip
        if plan_.operation == "ignore" and covering(entries, target) is None:
            wrong.append(state.jail)
        if plan_.operation == "unignore" and state.status == "removed" and exact(entries, target):
            wrong.append(state.jail)
    if wrong:
        raise IgnoreError(
            f"fail2ban-client -d does not agree: jail(s) {', '.join(wrong)} would not have "
            f"the expected ignoreip"
        )
    return "checked with fail2ban-client -d"


def _go_live(plan_: IgnorePlan, change_set: ChangeSet, result: IgnoreResult) -> None:
    if not plan_.live or plan_.socket is None:
        return
    with Client(plan_.socket) as client:
        for change in plan_.live:
            op = "add" if change.command[2] == "addignoreip" else "del"
            change_set.record_action(
                IGNORE_KIND,
                op=op,
                jail=change.jail,
                ip=change.command[3],
                socket=plan_.socket,
                summary=f"live: {change.shell}",
            )
            client.call(list(change.command))
            result.applied.append(change.shell)


def rollback_check(socket_of: Callable[[], str]) -> Callable[[Any], None]:
    """A reverter `check` refusing to put rows back into fail2ban's database under a running
    server (it writes the database itself)."""

    def check(info: Any) -> None:
        rows = [
            a
            for a in info.actions
            if a.get("kind") == "fail2ban-db-rows"
            and a.get("state") not in ("reverted", "not-applied")
        ]
        if not rows:
            return
        try:
            with Client(socket_of()) as client:
                client.call(["ping"])
        except ServerNotRunning:
            return
        raise InputError(
            f"change set {info.id} restores fail2ban's database, and fail2ban-server is running: "
            "stop it first (the server overwrites its database), then roll back"
        )

    return check


__all__ = ["LAYER", "IgnorePlan", "apply", "apply_into", "plan", "undo_live"]
