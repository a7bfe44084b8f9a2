"""One change set for a run's batches: journaled before each is applied, everything put back
on a failure, and what fail2ban or a live owner left behind swept up in the same change set.

`unban me` (its plan and its exemptions) and `unban remove`/`delete` (`apply_recorded`) apply
through `apply_as_change_set`; `unban undo` and the recovery of a killed run replay the same
records (`unban.undo`, `unban.recovery`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import TYPE_CHECKING, Callable, Optional, Union

from unban import engine
from unban.address import Network, parse_network, show
from unban.errors import ApplyError, UnbanError
from unban.exemptions import Exemption, ExemptionPlan
from unban.exemptions.stage import STAGE, ExemptionStage
from unban.journal import ChangeSetJournal
from unban.layers import Layer
from unban.model import Batch, Finding, Plan, Report
from unban.reverter import (
    APPLIED,
    FAILED,
    ChangeSet,
    Reverter,
)
from unban.signals import DeferredSignals
from unban.steptext import describe_batch
from unban.undo import batch_record, undo

if TYPE_CHECKING:
    from unban.layers.sshd_penalty import SshdPenaltyLayer

Event = Callable[[str], None]


def quiet(_line: str) -> None:
    return None


LEFTOVER_WAIT = 5.0  # seconds fail2ban gets to finish the actions of an unban


def apply_as_change_set(
    plan: Plan,
    exempting: Sequence[ExemptionPlan],
    layers: Sequence[Layer],
    exemptions: Sequence[Exemption],
    reverter: Reverter,
    confdir: str,
    event: Event,
    kind: str = "me",
) -> tuple[tuple[Batch, ...], ChangeSet, tuple[str, ...]]:
    """Apply every batch (the exemptions last) with one change set named `kind` (the
    command); on a failure put everything back.

    The change set is the run's write-ahead journal (`unban.journal`): each batch is written
    down with its undo before it is applied, so a run killed anywhere is put back by the next
    command (`unban.recovery`). Returns (the plan's batches applied, the change set, what the
    exemption steps did).
    """
    from unban.exemptions.stage import batches as exemption_batches

    change_set = reverter.begin(f"unban {kind} {plan.target}", kind=kind)
    by_name = {layer.name: layer for layer in layers}
    stage = ExemptionStage(change_set, exemptions)
    full = replace(plan, batches=(*plan.batches, *exemption_batches(exempting)))
    journal = ChangeSetJournal(
        change_set,
        lambda batch: batch_record(batch, by_name.get(batch.layer, stage)),
        lambda cause: _put_back(cause, change_set, reverter, confdir, layers, exemptions),
    )

    def done(batch: Batch) -> None:
        for line in describe_batch(batch, stage):
            event(line)

    with _recording_into(change_set, layers), DeferredSignals() as signals:
        try:
            _preregister(change_set, plan, layers)
            signals.check()
        except Exception as exc:  # noqa: BLE001 - nothing applied yet
            raise journal.put_back(exc) from exc
        outcome = engine.apply(full, [*layers, stage], on_batch=done, journal=journal)
        change_set.finalize()
        signals.received = None  # everything is applied and recorded: nothing to stop
    applied = tuple(b for b in outcome.applied if b.layer != STAGE)
    ignored = tuple(line for lines in stage.done.values() for line in lines)
    return applied, change_set, ignored


def apply_recorded(
    plan: Plan,
    layers: Sequence[Layer],
    *,
    kind: str,
    state_dir: str,
    confdir: str,
    on_event: Event = quiet,
) -> tuple[tuple[Batch, ...], str]:
    """Apply `plan` as one change set named `kind` (`unban remove`, `unban delete`), the way
    `unban me` applies its own: files backed up first, everything put back on a failure, and
    `unban undo` puts it back later. Returns (the batches applied, the change set's id)."""
    reverter = Reverter(state_dir)
    applied, change_set, _ = apply_as_change_set(
        plan, (), layers, (), reverter, confdir, on_event, kind
    )
    return applied, change_set.id


@contextmanager
def _recording_into(change_set: ChangeSet, layers: Sequence[Layer]) -> Iterator[None]:
    """The layers that change files (fail2ban's database, the hosts files, the owners' rules
    files, sshd's config) back them up into `change_set` while this is open."""
    from unban.layers.fail2ban import Fail2banLayer
    from unban.layers.hosts import HostsLayer
    from unban.owners.files import FileOwner
    from unban.owners.sshguard import SshguardOwner

    kinds = (Fail2banLayer, HostsLayer, FileOwner, SshguardOwner)
    recording: list[Union[Fail2banLayer, HostsLayer, FileOwner, SshguardOwner, SshdPenaltyLayer]]
    recording = [layer for layer in layers if isinstance(layer, kinds)]
    if any(layer.name == "sshd" for layer in layers):  # else its module need not be loaded
        from unban.layers.sshd_penalty import SshdPenaltyLayer as Sshd

        recording += [layer for layer in layers if isinstance(layer, Sshd)]
    for layer in recording:
        layer.change_set = change_set
    try:
        yield
    finally:
        for layer in recording:
            layer.change_set = None


def fail2ban_leftovers(after: Report, applied: Sequence[Batch], target: Network) -> list[Finding]:
    """Blocks fail2ban should have lifted with this run's unban, but are still there.

    fail2ban lists a ban a moment before its ban action has run; an unban that lands in between
    runs the action's unban first, and the ban action then still makes its rule (or set element,
    route, hostsdeny line). What is left is owned by a jail that no longer holds the address.
    """
    jails = set()
    clears: set[str] = set()
    for batch in applied:
        if batch.layer == "fail2ban" and batch.scope == "server":
            for step in batch.steps:
                jails.add(f"fail2ban:{step.finding.chain}")
                clears.update(step.finding.clears)
    if not jails:
        return []
    found = []
    for finding in after.findings:
        if finding.layer == "fail2ban" or not finding.targeted:
            continue
        if parse_network(finding.network) != target:
            continue
        by_fail2ban = finding.layer in clears and (
            finding.layer != "hosts" or finding.owner.startswith("fail2ban")
        )
        if finding.owner in jails or by_fail2ban:
            found.append(finding)
    return found


def owner_leftovers(after: Report, applied: Sequence[Batch], target: Network) -> list[Finding]:
    """Kernel entries a live owner's lift in this run (CrowdSec's deleted decision) should have
    taken away, but are still there: its bouncer follows at its next poll."""
    lifted = {
        (step.finding.owner, parse_network(step.finding.network))
        for batch in applied
        for step in batch.steps
        if step.finding.lifts_own
    }
    return [
        finding
        for finding in after.findings
        if not finding.lifts_own
        and finding.targeted
        and parse_network(finding.network) == target
        and (finding.owner, target) in lifted
    ]


def leftovers(after: Report, applied: Sequence[Batch], target: Network) -> list[Finding]:
    """What fail2ban's unban or a live owner's lift left behind (so far)."""
    return [*fail2ban_leftovers(after, applied, target), *owner_leftovers(after, applied, target)]


def settle_time(applied: Sequence[Batch], layers: Sequence[Layer]) -> float:
    """How long to wait for those: fail2ban's LEFTOVER_WAIT, or an owner's own bound (the
    CrowdSec bouncer's poll interval) when one of its lifts was applied."""
    wait = LEFTOVER_WAIT
    by_name = {layer.name: layer for layer in layers}
    for batch in applied:
        settle = getattr(by_name.get(batch.layer), "settle_seconds", None)
        if settle is not None and any(step.finding.lifts_own for step in batch.steps):
            wait = max(wait, float(settle()))
    return wait


def sweep_leftovers(
    stale: Sequence[Finding],
    applied_before: Sequence[Batch],
    target: Network,
    layers: Sequence[Layer],
    change_set: ChangeSet,
    reverter: Reverter,
    confdir: str,
    event: Event,
) -> tuple[Batch, ...]:
    """Remove what fail2ban or a live owner left behind, as part of the same run (same change
    set). Their undo is that owner's own ban again (`unban undo` bans again in fail2ban, adds the
    CrowdSec decision again), so they are recorded `by_fail2ban`.
    On a failure the whole run is undone, as `unban undo` would."""
    others = [layer for layer in layers if layer.name != "fail2ban"]
    plan = engine.plan(Report(show(target), tuple(stale)), others)
    done: list[Batch] = []
    by_name = {layer.name: layer for layer in others}

    def unused(cause: Exception) -> ApplyError:
        raise AssertionError("the sweep undoes the whole run itself") from cause

    journal = ChangeSetJournal(
        change_set, lambda b: batch_record(b, by_name[b.layer]), unused, by_fail2ban=True
    )
    with _recording_into(change_set, others):
        try:
            with DeferredSignals() as signals:
                for batch in plan.batches:
                    layer = next(x for x in others if x.name == batch.layer)
                    journal.intent(batch)
                    layer.apply(batch)
                    journal.applied(batch)
                    done.append(batch)
                    for line in describe_batch(batch):
                        event(f"{line} (left behind by {_lifted_by(batch)})")
                    signals.check()
        except Exception as exc:  # noqa: BLE001 - any failure undoes the whole run
            if not leftovers(engine.find(target, layers), applied_before, target):
                return tuple(done)  # their owner lifted them meanwhile: nothing is left to do
            try:
                undo(
                    change_set.id, state_dir=str(reverter.state_dir), confdir=confdir, layers=layers
                )
            except UnbanError as again:
                raise ApplyError(
                    f"{exc}; undoing this run failed too: {again}. "
                    f"Backups are in {change_set.path}",
                    rollback_failed=True,
                ) from exc
            raise ApplyError(
                f"{exc}; the whole run was undone (change set {change_set.id})",
                rollback_failed=False,
            ) from exc
    return tuple(done)


def _lifted_by(batch: Batch) -> str:
    owners = {step.finding.owner for step in batch.steps}
    if all(owner.startswith("fail2ban") for owner in owners):
        return "fail2ban's unban"
    return f"{', '.join(sorted(owners))} (its own lift had not reached the kernel yet)"


def _preregister(change_set: ChangeSet, plan: Plan, layers: Sequence[Layer]) -> None:
    """Back up the hosts files before the first change when this run may change them: fail2ban's
    hostsdeny action edits hosts.deny itself, so its backup must be taken before fail2ban's
    unban (undo bans again, then puts the file back byte for byte)."""
    from unban.layers.hosts import HostsLayer

    hosts = next((layer for layer in layers if isinstance(layer, HostsLayer)), None)
    if hosts is None:
        return
    paths = [b.scope for b in plan.batches if b.layer == hosts.name]
    if any(
        hosts.name in step.finding.clears
        for b in plan.batches
        if b.layer == "fail2ban"
        for step in b.steps
    ):
        paths.append(hosts.deny_path)
    for path in dict.fromkeys(paths):
        change_set.register(path, kind="hosts")


def _put_back(
    cause: Exception,
    change_set: ChangeSet,
    reverter: Reverter,
    confdir: str,
    layers: Sequence[Layer],
    exemptions: Optional[Sequence[Exemption]] = None,
) -> ApplyError:
    """After a failure: undo the change set from its journal, as `unban undo` would (every
    applied or pending batch reverted, unban's own file edits taken out, files it never wrote
    left alone), and mark it failed, so nothing is undone twice. The error to raise."""
    from unban.recovery import undo_check, undo_handlers

    reason = _reason(cause)
    applied = sum(1 for a in change_set.info.actions if a.get("state") == APPLIED)
    try:
        reverter.rollback(
            change_set.id,
            handlers=undo_handlers(confdir, str(reverter.state_dir), layers, exemptions),
            check=undo_check(confdir),
            status=FAILED,
        )
    except UnbanError as exc:
        return ApplyError(
            f"{reason}; putting back the earlier changes failed too: {exc}. The next unban "
            f"command (or `unban undo {change_set.id}`) tries again; backups are in "
            f"{change_set.path}",
            rollback_failed=True,
        )
    undone = f"; the {applied} batch(es) already applied were put back" if applied else ""
    return ApplyError(
        f"{reason}{undone}; nothing is changed (change set {change_set.id} rolled back, marked failed)",
        rollback_failed=False,
    )


def _reason(cause: Exception) -> str:
    """One line for what failed: a file system error says which file and why."""
    from unban.errors import os_error_text

    if isinstance(cause, OSError):
        return os_error_text(cause)
    return str(cause)
