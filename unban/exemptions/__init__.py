"""Exemptions: "keep ADDRESS out of future bans", once for every ban source on the host.

Beside the layers (which lift a block in the kernel) and the owners (which lift it where it is
kept), each ban source that would ban the address again has one exemption here:

- `fail2ban` (unban.exemptions.fail2ban): the effective ignoreip of every enabled jail
  (unban.fail2ban.ignoreip), only where fail2ban is installed and configured;
- `sshguard` (unban.exemptions.sshguard): its WHITELIST_FILE, then a restart (sshguard reads
  it only at start);
- `crowdsec` (unban.exemptions.crowdsec): `cscli allowlists` where cscli has them (1.6+), else
  a whitelist parser in /etc/crowdsec/parsers/s02-enrich/, then a reload.

sshguard and CrowdSec count as present where their daemon runs in this process's mount and
network namespaces (a stopped one bans nobody, and a daemon in another namespace reads another
/etc); `unban ignore --only sshguard|crowdsec` writes their files even when stopped.

Every exemption answers the same questions (`Exemption`): is its ban source here, is the
address exempt there now (`state`), what would exempt it or take the exemption back (`plan`: a
value, rendered by --dry-run, run by `apply`), and how to put a change back (`revert`, from
the change set's record). Every file is written through `ChangeSet.write` (backed up and
journaled first, so undo takes out only unban's own lines); each live change (a restart, a
reload, a live ignoreip entry, a `cscli allowlists` call) is recorded there as an action of
EXEMPTION_KIND (fail2ban's own as ignoreip.IGNORE_KIND) before it is made, a restart or reload
naming its files as FILES_FIRST (put back right before it is undone, so the daemon reads them
as they were, and before the older changes a restart would drop), so
`unban undo`, a failed run and the recovery of a killed one put it back, in any process. A
second run plans nothing and writes nothing.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Optional, Protocol

from unban.address import Network
from unban.errors import InputError, UnbanError
from unban.reverter import ChangeSet

EXEMPTION_KIND = "exemption"  # change set action: a live change an exemption made
IGNORE, UNIGNORE = "ignore", "unignore"


@dataclass(frozen=True)
class ExemptionState:
    """Whether `source` is on this host and whether the address is exempt there."""

    source: str
    present: bool
    exempt: bool
    detail: str  # where it is exempt, why not, or why the source is not here


@dataclass(frozen=True)
class FileEdit:
    path: str
    before: Optional[str]  # None: the file is new
    after: Optional[str]  # None: the file is removed

    def diff(self) -> list[str]:
        old = (self.before or "").splitlines(keepends=True)
        new = (self.after or "").splitlines(keepends=True)
        return [
            line.rstrip("\n")
            for line in difflib.unified_diff(
                old,
                new,
                self.path if self.before is not None else "/dev/null",
                self.path if self.after is not None else "/dev/null",
            )
        ]


@dataclass(frozen=True)
class Command:
    """A live change: the argv run, the shell line a person could run instead, and its undo."""

    argv: tuple[str, ...]
    shell: str
    undo: tuple[str, ...] = ()


@dataclass(frozen=True)
class ExemptionPlan:
    """What one exemption would change for one address (a value: --dry-run prints it)."""

    source: str
    operation: str  # ignore | unignore
    address: str
    edits: tuple[FileEdit, ...] = ()
    commands: tuple[Command, ...] = ()
    lines: tuple[str, ...] = ()  # what it does, in words
    notes: tuple[str, ...] = ()  # what it costs or leaves as it is (a restart drops ...)
    payload: Any = None  # the exemption's own plan (fail2ban: ignoreplan.IgnorePlan)

    def is_empty(self) -> bool:
        return not self.edits and not self.commands

    def change_count(self) -> int:
        return len(self.edits) + len(self.commands)


class ExemptionError(UnbanError):
    """An exemption could not be written or checked; says what was put back."""


class Exemption(Protocol):
    """What every ban source's exemption offers. Only `apply`/`revert` (and reads) change
    anything."""

    name: str

    def state(self, target: Network) -> ExemptionState: ...

    def plan(self, operation: str, target: Network) -> Optional[ExemptionPlan]:
        """None when the source is not here (nothing to exempt the address from)."""
        ...

    def apply(self, plan: ExemptionPlan, change_set: ChangeSet) -> list[str]:
        """Make the plan's changes, backed up and recorded in `change_set`; what was done."""
        ...

    def revert(self, action: Mapping[str, Any]) -> None:
        """Undo one EXEMPTION_KIND action this exemption recorded."""
        ...


def default_exemptions(confdir: str) -> list[Exemption]:
    """Every exemption, with fail2ban's config dir `confdir` and the default paths elsewhere."""
    from unban.exemptions.crowdsec import CrowdsecExemption
    from unban.exemptions.fail2ban import Fail2banExemption
    from unban.exemptions.sshguard import SshguardExemption

    return [Fail2banExemption(confdir), SshguardExemption(), CrowdsecExemption()]


def select(exemptions: Sequence[Exemption], only: Optional[Sequence[str]]) -> list[Exemption]:
    """Only the exemptions named (`--only fail2ban`); all with None."""
    if not only:
        return list(exemptions)
    names = [e.name for e in exemptions]
    unknown = sorted(set(only) - set(names))
    if unknown:
        raise InputError(f"--only {', '.join(unknown)}: use {', '.join(names)}")
    return [e for e in exemptions if e.name in only]


def states(exemptions: Sequence[Exemption], target: Network) -> list[ExemptionState]:
    """Each ban source's answer for `target` (find's "exempt in ..." line)."""
    return [e.state(target) for e in exemptions]


def plans(
    exemptions: Sequence[Exemption], operation: str, target: Network, notes: list[str]
) -> list[ExemptionPlan]:
    """Every present source's plan (empty ones too: they say "already exempt"). A source whose
    config cannot be changed is left as it is, with a note saying why."""
    out = []
    for exemption in exemptions:
        try:
            planned = exemption.plan(operation, target)
        except UnbanError as exc:
            notes.append(f"{exemption.name}: the exemption is left as it is: {exc}")
            continue
        if planned is not None:
            out.append(planned)
    return out


def undo_action(action: Mapping[str, Any], exemptions: Sequence[Exemption]) -> None:
    """The change-set handler for EXEMPTION_KIND: the recording exemption reverts it."""
    source = str(action.get("source", ""))
    for exemption in exemptions:
        if exemption.name == source:
            exemption.revert(action)
            return
    raise UnbanError(f"no {source or '?'} exemption here to undo {action.get('summary', '')}")


def plan_lines(plan: ExemptionPlan, *, diff: bool = False) -> list[str]:
    """One plan as `unban me` and `unban ignore` print it (indented by the caller)."""
    lines = list(plan.lines)
    for edit in plan.edits:
        if diff:
            lines.extend(f"  {line}" for line in edit.diff())
        else:
            verb = "remove" if edit.after is None else "write"
            lines.append(f"  {verb} {edit.path}" + (" (new)" if edit.before is None else ""))
    for command in plan.commands:
        lines.append(f"  $ {command.shell}")
    lines.extend(f"note: {note}" for note in plan.notes)
    return lines


__all__ = [
    "EXEMPTION_KIND",
    "Command",
    "Exemption",
    "ExemptionPlan",
    "ExemptionState",
    "FileEdit",
    "default_exemptions",
    "plans",
    "states",
]
