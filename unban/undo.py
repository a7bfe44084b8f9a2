"""`unban undo`: a change set of any command put back, newest first, from the records its run
wrote (`batch_record`); and what a later change set that touched the same files means for it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Optional

from unban.errors import InputError
from unban.exemptions import Exemption
from unban.exemptions.stage import STAGE
from unban.layers import Layer
from unban.model import Batch, as_json
from unban.reverter import (
    FAILED,
    IN_PROGRESS,
    NOT_APPLIED,
    ROLLED_BACK,
    ChangeSetInfo,
    Reverter,
)
from unban.steptext import step_text

FILE_LAYERS = ("hosts", "sshguard", STAGE)


@dataclass(frozen=True)
class UndoResult:
    change_set: str
    description: str
    undone: tuple[str, ...]  # the batches and live changes put back, newest first
    restored: tuple[str, ...]  # the files restored (or removed: they did not exist)
    cannot: tuple[str, ...]  # what could not be made exactly as it was


def batch_record(batch: Batch, layer: Any) -> dict[str, Any]:
    """A batch as JSON for the change set: enough for `rebuild` + layer.revert later.

    Batches whose changes are files (hosts, fail2ban's database, ignoreip's config) are marked
    `by_file`: the change set's file backups undo them. fail2ban's server batch keeps only the
    bans this run really lifted (one that expired meanwhile is not banned again).
    """
    from unban.layers.fail2ban import Fail2banLayer

    undo_payload: tuple[Any, ...] = batch.undo_payload
    if isinstance(layer, Fail2banLayer) and batch.scope == "server":
        done = layer.unbanned(batch) or [(str(p[1]), str(p[2])) for p in batch.payload]
        undo_payload = tuple(("banip", jail, ip) for jail, ip in done)
    # fail2ban's database batch: its rows are a change set action of their own (ROWS_KIND)
    by_file = batch.layer in FILE_LAYERS or (batch.layer == "fail2ban" and batch.scope != "server")
    return {
        "layer": batch.layer,
        "scope": batch.scope,
        "by_file": by_file,
        "steps": [
            {
                "finding": as_json(step.finding),
                "command": step.command,
                "undo_command": step.undo_command,
            }
            for step in batch.steps
        ],
        "payload": [] if by_file else as_json(batch.payload),
        "undo_payload": as_json(undo_payload),
        "summary": record_summary(batch),
    }


def record_summary(batch: Batch) -> str:
    """One line for `unban history` and `unban undo`."""
    if batch.layer == STAGE:
        plan_ = batch.payload[0]
        files = ", ".join(edit.path for edit in plan_.edits) or "no file"
        return f"{plan_.source} exemption: {plan_.address} added ({files})"
    texts = [step_text(step) for step in batch.steps]
    if len(texts) > 3:
        texts = [*texts[:3], f"and {len(texts) - 3} more"]
    return f"{batch.layer} {batch.scope}: " + "; ".join(texts)


def undo(
    change_id: Optional[str] = None,
    *,
    state_dir: str,
    confdir: str,
    layers: Optional[Sequence[Layer]] = None,
    exemptions: Optional[Sequence[Exemption]] = None,
) -> UndoResult:
    """Put back a change set (of any command): the last one not undone yet, or `change_id`
    (a run that was cut short too: what it did, or may have done, is put back).

    Its batches are reverted newest-first (rules and set elements added back, routes and
    xt_recent entries back, fail2ban bans again, fail2ban's database rows inserted again,
    CrowdSec decisions added again), its live exemptions taken out (ignoreip entries; sshguard
    restarted with its old whitelist, CrowdSec reloaded), then unban's own edits taken out of
    its files (hosts files, jail.local, sshguard's blacklist and whitelist, CrowdSec's
    whitelist parser: a file changed since keeps the other changes; one whose unban lines
    changed is refused, naming them, before anything is touched). Refuses (InputError, nothing
    changed) when a later change set, not rolled back, changed one of the same files: undo
    that one first.
    """
    from unban.recovery import undo_check, undo_handlers

    reverter = Reverter(state_dir)
    info = undoable(reverter, change_id)
    cut_short = info.status == IN_PROGRESS
    db_check = undo_check(confdir)

    def check(found: Any) -> None:
        _refuse_if_later(found, reverter.list())
        db_check(found)

    done = reverter.rollback(
        info.id,
        handlers=undo_handlers(confdir, str(reverter.state_dir), layers, exemptions),
        check=check,
    )
    undone = [a for a in reversed(done.actions) if a.get("state") != NOT_APPLIED]
    return UndoResult(
        change_set=done.id,
        description=done.description + (" (cut short)" if cut_short else ""),
        undone=tuple(str(a.get("summary") or a.get("kind")) for a in undone),
        restored=tuple(
            f"{'restored' if r.existed else 'removed'} {r.path}"
            for r in reversed(done.files)
            if r.written
        ),
        cannot=tuple(cannot_restore(done.actions)),
    )


def undoable(reverter: Reverter, change_id: Optional[str] = None) -> ChangeSetInfo:
    """The change set `unban undo` takes: `change_id`, or the newest one not undone yet (a
    failed run's, put back already, is refused rather than passed over for an older one the
    user may not mean). Raises InputError (nothing changed) when there is none, it failed and was put
    back, it was undone already, its process is still making it, or a later change set, not
    undone, changed one of the same files."""
    infos = reverter.list()
    if change_id is None:
        pending = [i for i in infos if i.status != ROLLED_BACK]
        if not pending:
            raise InputError(f"no change set to undo in {reverter.changes_dir}")
        info = pending[-1]
    else:
        info = reverter.get(change_id)
    if info.status == FAILED:
        raise InputError(
            f"change set {info.id} ({info.description}) failed and was put back: nothing to undo"
        )
    if info.status == ROLLED_BACK:
        raise InputError(f"change set {info.id} ({info.description}) was undone already")
    if info.status == IN_PROGRESS and info not in reverter.incomplete():
        raise InputError(f"change set {info.id} is still being made (process {info.owner[0]})")
    _refuse_if_later(info, infos)
    return info


def later_overlap(info: Any, infos: Sequence[Any]) -> Any:
    """A later change set, not undone, that changed one of the same files (undo it first)."""
    mine = {r.path for r in info.files}
    for other in infos:
        if int(other.id) <= int(info.id) or other.status == ROLLED_BACK:
            continue
        if mine & {r.path for r in other.files}:
            return other
    return None


def overlap_message(info: Any, other: Any) -> str:
    shared = sorted({r.path for r in info.files} & {r.path for r in other.files})
    return (
        f"change set {other.id} ({other.description}), made later, changed "
        f"{', '.join(shared)} too: undo it first (`unban undo {other.id}`)"
    )


def _refuse_if_later(info: Any, infos: Sequence[Any]) -> None:
    other = later_overlap(info, infos)
    if other is not None:
        raise InputError(overlap_message(info, other))


def cannot_restore(actions: Sequence[Mapping[str, Any]]) -> list[str]:
    """What putting the batches back cannot make exactly as it was."""
    notes: list[str] = []
    layers = {str(a.get("layer")) for a in actions if not a.get("by_file")}
    for action in actions:
        if action.get("layer") == "fail2ban" and action.get("scope") == "server":
            jails = sorted({str(u[1]) for u in action.get("undo_payload", [])})
            if jails:
                notes.append(
                    f"fail2ban bans again in {', '.join(jails)} from now: the bans' start times "
                    "and remaining ban times are not restored (a ban counts from the undo)"
                )
    if "xt_recent" in layers:
        notes.append(
            "xt_recent entries come back with one hit at the time of the undo, not their old "
            "hit times"
        )
    if layers & {"iptables", "nftables"}:
        notes.append("rules put back start with zero packet and byte counters")
    if "crowdsec" in layers:
        notes.append(
            "CrowdSec's decisions come back as new ones (new ids, origin cscli) with the time "
            "they had left; their alerts are not restored"
        )
    if any(a.get("layer") == "sshguard" for a in actions):
        notes.append(
            "sshguard blocks the address again from its blacklist at its next start; a block "
            "put back into the kernel stays until sshguard restarts (it does not know of it)"
        )
    return notes
