"""`unban me [ADDRESS]`: every layer in one undoable transaction, then checked again.

The public entry point is `run_me` (also what `unban heal` calls for each protected address):

    result = run_me(parse_target("203.0.113.4"))          # quiet: nothing is printed
    result.blocked     # something blocked it before the run
    result.changed     # something was changed (result.change_set holds the undo)
    result.summary     # one line: "203.0.113.4: unblocked (3 changes, change set 12)"
    result.status      # ExitStatus.OK, or STILL_BLOCKED when something still refuses it
    result.still_refused  # what still refuses it, each with the command that would clear it

`run_me` raises instead of returning when it cannot do its job: `InputError` (exit 2) for bad
input, `ApplyError` (exit 1, or 5 when putting things back failed too) when a step failed; in
that case everything already changed by this run has been put back. `exc.exit_status` is the
exit status either way.

Order of the changes, each a batch of the engine's plan: fail2ban (unban in every jail, or its
database when the server is stopped), the packet filters (targeted findings; broad ones only
with `broad`), /etc/hosts.allow and /etc/hosts.deny, then fail2ban's ignoreip (unless
`ignore=False`). One reverter change set holds everything: the backups of every file changed
(hosts files, fail2ban's database, jail.local...) and, as JSON actions, every other batch with
its undo data, so `unban undo` can put it all back in a later process (`undo`).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from unban.address import Network
from unban.errors import ExitStatus
from unban.layers import Layer
from unban.model import Batch, Plan, Report

# What `unban heal`'s config calls the layers (healconfig.LAYERS), and the engine layers in each.
LAYER_GROUPS: dict[str, tuple[str, ...]] = {
    "firewall": ("iptables", "nftables", "ipset", "xt_recent", "route"),
    "fail2ban": ("fail2ban",),
    "hosts": ("hosts",),
}

Event = Callable[[str], None]


def _quiet(_line: str) -> None:
    return None


@dataclass(frozen=True)
class Refusal:
    """Something that still refuses the address after the run, and how to clear it."""

    key: str  # a layer name (iptables, hosts, ...) or a doctor check key (users, maxstartups)
    what: str
    fix: str  # a command a person can run, or what to change


@dataclass(frozen=True)
class MeResult:
    """What `run_me` did. Rendered by the CLI (`text_lines`) or as JSON (`model.as_json`)."""

    target: str
    dry_run: bool
    before: Report
    plan: Plan
    ignore: Any = None  # fail2ban.ignoreip.IgnorePlan, or None with ignore=False / no fail2ban
    applied: tuple[Batch, ...] = ()
    ignored: tuple[str, ...] = ()  # what the ignoreip step did, one line each
    change_set: Optional[str] = None
    after: Optional[Report] = None
    still_refused: tuple[Refusal, ...] = ()
    notes: tuple[str, ...] = ()
    events: tuple[str, ...] = field(default=())  # each step's "what it did" line, in order

    @property
    def blocked(self) -> bool:
        """Something blocked the address before this run (a finding in any layer)."""
        return bool(self.before.findings)

    @property
    def changed(self) -> bool:
        """This run changed something (never true for a dry run)."""
        return self.change_set is not None

    @property
    def status(self) -> ExitStatus:
        return ExitStatus.STILL_BLOCKED if self.still_refused else ExitStatus.OK

    @property
    def summary(self) -> str:
        """One line, e.g. for `unban heal` and syslog."""
        return summary_line(self)


def summary_line(result: MeResult) -> str:
    changes = len(result.plan.steps) + len(result.ignored)
    refused = (
        f"; still refused by {len(result.still_refused)} thing(s): "
        + ", ".join(r.key for r in result.still_refused)
        if result.still_refused
        else ""
    )
    if result.dry_run:
        return f"{result.target}: dry run, {changes} change(s) planned{refused}"
    if not result.changed:
        state = "nothing to do" if not result.still_refused else "nothing unban can change"
        return f"{result.target}: {state}{refused}"
    return (
        f"{result.target}: {'unblocked' if not result.still_refused else 'partly unblocked'} "
        f"({changes} change(s), `unban undo {result.change_set}` puts them back){refused}"
    )


def run_me(
    target: Network,
    *,
    broad: bool = False,
    ignore: bool = True,
    dry_run: bool = False,
    user: Optional[str] = None,
    groups: Optional[Collection[str]] = None,
    sshd_config: Optional[str] = None,
    check_sshd: bool = True,
    on_event: Event = _quiet,
    layers: Optional[Sequence[Layer]] = None,
    confdir: Optional[str] = None,
    state_dir: Optional[str] = None,
) -> MeResult:
    """Unblock `target` in every layer, in one transaction; see the module docstring.

    `groups`: only these LAYER_GROUPS ("firewall", "fail2ban", "hosts"; None: all).
    `ignore`: also put the address into fail2ban's ignoreip. `check_sshd`: also ask sshd
    (AllowUsers/DenyUsers for `user`, MaxStartups) what still refuses it. `on_event` gets each
    "what it did" line as it happens (the CLI prints them; heal passes nothing: quiet).
    `confdir`/`state_dir` default to the global --fail2ban-conf/--state-dir settings.
    """
    raise NotImplementedError("unban me is being written (issue 4); the signature is stable")


__all__ = ["LAYER_GROUPS", "MeResult", "Refusal", "run_me"]
