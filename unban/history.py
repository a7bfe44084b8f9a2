"""`unban history` and `unban undo`: every change set, what it changed, and putting one back.

Every command that changes something records one change set (unban/reverter.py) named by its
`kind`: me, heal, remove, delete, ignore, unignore. `undo_plan` says, in put-back words, what
undoing one would do (`unban undo --dry-run` prints it); `undo` does exactly that, through
`unban.undo.undo`, which reverts every kind of change set.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Optional

from unban.reverter import ChangeSetInfo, Reverter

# Change sets written before kinds were recorded are named from their description.
_KIND_PREFIXES = (
    ("unban me ", "me"),
    ("unban heal ", "heal"),
    ("ignore ", "ignore"),
    ("unignore ", "unignore"),
    ("hosts: ", "hosts-edit"),
    ("fail2ban", "fail2ban-db"),
)
ROLLED_BACK = "rolled-back"


def kind_of(info: ChangeSetInfo) -> str:
    if info.kind:
        return info.kind
    for prefix, kind in _KIND_PREFIXES:
        if info.description.startswith(prefix):
            return kind
    return "change"


@dataclass(frozen=True)
class Entry:
    """One change set as `unban history` lists it."""

    info: ChangeSetInfo
    kind: str
    changed: tuple[str, ...]  # what it changed, one line each
    undo: str  # "yes", or why `unban undo` cannot take it now

    def when(self) -> str:
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.info.created))

    def to_json(self) -> dict[str, Any]:
        return {
            **self.info.to_json(),
            "kind": self.kind,
            "changed": self.changed,
            "undo": self.undo,
        }


def entries(reverter: Reverter) -> list[Entry]:
    """Every change set, oldest first."""
    from unban.undo import later_overlap

    infos = reverter.list()
    result = []
    for info in infos:
        if info.status == ROLLED_BACK:
            undo = "no: undone already"
        else:
            later = later_overlap(info, infos)
            undo = f"after change set {later.id}" if later else "yes"
        result.append(Entry(info, kind_of(info), tuple(changed_lines(info)), undo))
    return result


def history_lines(found: Sequence[Entry]) -> list[str]:
    """`unban history` as plain text (a pipe, a log): one line per change set, then what it
    changed, indented."""
    if not found:
        return ["no change sets yet"]
    lines = []
    for entry in found:
        info = entry.info
        lines.append(
            f"{info.id:>4}  {entry.when()}  {entry.kind:<9}  {info.status:<11}  "
            f"undo: {entry.undo:<8}  {info.description}"
        )
        lines.extend(f"        {line}" for line in entry.changed)
    return lines


def changed_lines(info: ChangeSetInfo) -> list[str]:
    """What a change set changed, in the words of the command that did it."""
    lines = [str(a.get("summary") or a.get("kind")) for a in info.actions]
    for record in info.files:
        lines.append(f"{'changed' if record.existed else 'created'} {record.path}")
    return lines


@dataclass(frozen=True)
class UndoPlan:
    """What undoing one change set does: `unban undo --dry-run` prints it, `undo` runs it."""

    change_set: str
    kind: str
    description: str
    steps: tuple[str, ...]  # newest first, in put-back words
    cannot: tuple[str, ...]  # what cannot be made exactly as it was

    def lines(self, *, done: bool) -> list[str]:
        head = "undid" if done else "undo"
        lines = [f"{head} change set {self.change_set} ({self.description}):"]
        lines += [f"  {step}" for step in self.steps]
        lines += [f"  cannot restore: {note}" for note in self.cannot]
        if not done:
            lines.append("dry run: nothing changed")
        return lines


def undo_plan(reverter: Reverter, change_id: Optional[str] = None) -> UndoPlan:
    """The plan for undoing `change_id` (default: the newest change set not undone yet).

    Raises InputError (nothing changed) where `unban undo` would refuse (`undo.undoable`)."""
    from unban.undo import cannot_restore, undoable

    info = undoable(reverter, change_id)
    return UndoPlan(
        info.id,
        kind_of(info),
        info.description,
        tuple(put_back_lines(info)),
        tuple(cannot_restore(info.actions)),
    )


def undo(plan: UndoPlan, *, state_dir: str, confdir: str) -> Any:
    """Undo the change set of `plan` (unban.undo reverts every kind); returns an UndoResult."""
    from unban.undo import undo as undo_change_set

    return undo_change_set(plan.change_set, state_dir=state_dir, confdir=confdir)


def put_back_lines(info: ChangeSetInfo) -> list[str]:
    """What undoing `info` puts back, newest first, one line per rule, ban, entry or file."""
    lines: list[str] = []
    for action in reversed(info.actions):
        lines.extend(_action_put_back(action))
    for record in reversed(info.files):
        if record.existed:
            lines.append(f"restore {record.path} byte for byte (owner, mode and times too)")
        else:
            lines.append(f"remove {record.path} (it did not exist before)")
    return lines


def _action_put_back(action: Mapping[str, Any]) -> list[str]:
    from unban.exemptions.stage import STAGE
    from unban.fail2ban.ignoreip import IGNORE_KIND
    from unban.journal import ME_BATCH, rebuild

    if action.get("kind") == IGNORE_KIND:
        jail, ip = action.get("jail"), action.get("ip")
        if action.get("op") == "add":
            return [f"take {ip} back out of fail2ban jail {jail}'s live ignoreip"]
        return [f"put {ip} back into fail2ban jail {jail}'s live ignoreip"]
    if action.get("kind") != ME_BATCH:
        return [f"undo {action.get('summary') or action.get('kind')}"]
    layer = action.get("layer")
    if layer == STAGE:
        return []  # its files and live changes (IGNORE_KIND, EXEMPTION_KIND) are listed
    if layer == "fail2ban" and action.get("scope") == "server":
        return [
            f"put back the ban of {ban[2]} in fail2ban jail {ban[1]}"
            for ban in action.get("undo_payload", [])
        ]
    batch = rebuild(action)
    lines = []
    for step in batch.steps:
        finding = step.finding
        if action.get("by_fail2ban"):
            lines.append(f"left to fail2ban's ban to make again: {finding.rule}")
        elif layer == "fail2ban":
            lines.append(
                f"put back the ban of {finding.network} in fail2ban jail {finding.chain} "
                "(its database, restored below)"
            )
        elif layer == "hosts" and finding.targeted:
            lines.append(f"put back {finding.table} line {finding.line}: {finding.rule}")
        elif layer == "hosts":
            lines.append(f"take the grant for {finding.network} back out of hosts.allow")
        elif finding.element:
            lines.append(f"put back {finding.element} into {finding.location()}")
        else:
            lines.append(f"put back rule {finding.rule} ({finding.location()})")
    return lines
