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
with `broad`), /etc/hosts.allow and /etc/hosts.deny, the owners (sshguard's blacklist file,
CrowdSec's decisions), then the exemptions of every ban source here (fail2ban's ignoreip,
sshguard's whitelist, CrowdSec's whitelist: unban.exemptions; not with `ignore=False`). One
reverter change set holds everything: the backups of every file changed (hosts files,
fail2ban's database, jail.local...) and, as JSON actions, every other batch with its undo data,
so `unban undo` can put it all back in a later process (`undo`).
"""

from __future__ import annotations

import time
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Optional

from unban import engine, render
from unban.address import Network, parse_network, show
from unban.errors import ApplyError, ExitStatus, InputError, LayerError, UnbanError
from unban.exemptions import IGNORE, Exemption, ExemptionPlan
from unban.exemptions import default_exemptions as _default_exemptions
from unban.exemptions import plans as exemption_plans
from unban.exemptions.stage import STAGE, ExemptionStage
from unban.exemptions.stage import notes as exemption_notes
from unban.journal import ME_BATCH, ChangeSetJournal, rebuild
from unban.layers import Layer
from unban.model import Batch, Finding, Plan, Report, Step, as_json
from unban.recovery import default_layers
from unban.reverter import (
    APPLIED,
    FAILED,
    IN_PROGRESS,
    NOT_APPLIED,
    ROLLED_BACK,
    ChangeSet,
    Reverter,
)
from unban.shellwords import argv_of
from unban.signals import DeferredSignals

# What `unban heal`'s config calls the layers (healconfig.LAYERS), and the engine layers in each.
LAYER_GROUPS: dict[str, tuple[str, ...]] = {
    "firewall": ("iptables", "nftables", "ipset", "xt_recent", "route"),
    "fail2ban": ("fail2ban",),
    "hosts": ("hosts",),
    "owners": (
        "ufw",
        "firewalld",
        "netfilter-persistent",
        "ipset-persistent",
        "nftables.conf",
        "sshguard",
        "crowdsec",
    ),
    "sshd": ("sshd",),  # PerSourcePenalties (OpenSSH 9.8+)
}

Event = Callable[[str], None]
FILE_LAYERS = ("hosts", "sshguard", STAGE)
LEFTOVER_WAIT = 5.0  # seconds fail2ban gets to finish the actions of an unban
# Exemptions of the ban sources each LAYER_GROUPS group holds (heal's `layers`).
EXEMPTION_GROUPS = {"fail2ban": ("fail2ban",), "owners": ("sshguard", "crowdsec")}


def _quiet(_line: str) -> None:
    return None


@dataclass(frozen=True)
class Refusal:
    """Something that still refuses the address after the run, and how to clear it."""

    key: str  # a layer name (iptables, hosts, ...) or a doctor check key (users, maxstartups)
    what: str
    fix: str  # a command a person can run, or what to change
    finding: Optional[Finding] = None  # what refuses it, when a layer found it
    argv: tuple[str, ...] = ()  # the fix as one command's argv, when it is one


@dataclass(frozen=True)
class MeResult:
    """What `run_me` did. Rendered by the CLI (`text_lines`) or as JSON (`model.as_json`)."""

    target: str
    dry_run: bool
    before: Report
    plan: Plan
    exemptions: tuple[ExemptionPlan, ...] = ()  # every present ban source's (none: ignore=False)
    applied: tuple[Batch, ...] = ()
    ignored: tuple[str, ...] = ()  # what the exemption steps did, one line each
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


@dataclass(frozen=True)
class UndoResult:
    change_set: str
    description: str
    undone: tuple[str, ...]  # the batches and live changes put back, newest first
    restored: tuple[str, ...]  # the files restored (or removed: they did not exist)
    cannot: tuple[str, ...]  # what could not be made exactly as it was


def summary_line(result: MeResult) -> str:
    changes = planned_changes(result.plan, result.exemptions)
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
    keep_sshd_exempt: bool = False,
    on_event: Event = _quiet,
    layers: Optional[Sequence[Layer]] = None,
    exemptions: Optional[Sequence[Exemption]] = None,
    confdir: Optional[str] = None,
    state_dir: Optional[str] = None,
    change_kind: str = "me",
) -> MeResult:
    """Unblock `target` in every layer, in one transaction; see the module docstring.

    `groups`: only these LAYER_GROUPS ("firewall", "fail2ban", "hosts", "owners", "sshd"; None:
    all), and the exemptions of their ban sources (EXEMPTION_GROUPS). `ignore`: also exempt the
    address in every ban source present (`exemptions`, default: unban.exemptions').
    `check_sshd`: also ask sshd (AllowUsers/DenyUsers for `user`, MaxStartups) what still
    refuses it. `on_event` gets each "what it did" line as it happens (the CLI prints them;
    heal passes nothing: quiet). `keep_sshd_exempt`: put the address into sshd's
    PerSourcePenaltyExemptList even without an active penalty (heal keeps protected addresses
    there).
    `confdir`/`state_dir` default to the global --fail2ban-conf/--state-dir settings.
    `change_kind` names the change set in `unban history` ("heal" for heal's runs).
    """
    from unban import fail2ban

    current = fail2ban.settings()
    confdir = confdir or current.confdir
    state_dir = state_dir or current.state_dir
    if layers is None:
        layers = select_layers(
            default_layers(confdir, state_dir, sshd_config, keep_sshd_exempt), groups
        )
    layers = list(layers)
    chosen = select_exemptions(
        _default_exemptions(confdir) if exemptions is None else exemptions, groups
    )
    shown = show(target)
    notes: list[str] = []
    if target.num_addresses != 1:
        notes.append(
            "hosts.allow/hosts.deny are evaluated for single addresses only: "
            f"not checked for {shown}"
        )
    before = engine.find(target, layers)
    plan = engine.plan(before, layers, broad=broad, on_path_only=True)
    exempting = tuple(exemption_plans(chosen, IGNORE, target, notes) if ignore else ())
    notes.extend(exemption_notes(exempting))  # the others' notes are in the plan's lines
    for line in plan_lines(plan, exempting):
        on_event(line)
    sshd_refusals: list[Refusal] = []
    if check_sshd and target.num_addresses == 1:
        sshd_refusals = sshd_checks(shown, user, sshd_config, notes)
    base = MeResult(shown, dry_run, before, plan, exempting, notes=tuple(notes))
    nothing = plan.is_empty() and not stage_changes(exempting)
    if dry_run or nothing:
        refused = refusals(before, plan.skipped, layers)
        if nothing:
            refused += path_refusals(before, refused)
        return replace(base, still_refused=tuple(refused + sshd_refusals))
    events: list[str] = []

    def event(line: str) -> None:
        events.append(line)
        on_event(line)

    reverter = Reverter(state_dir)
    applied, change_set, ignored = _transaction(
        plan, exempting, layers, chosen, reverter, confdir, event, change_kind
    )
    after = engine.find(target, layers)  # layers read the system again after a change
    stale = leftovers(after, applied, target)
    deadline = time.monotonic() + settle_time(applied, layers)
    while stale and time.monotonic() < deadline:
        time.sleep(0.25)  # fail2ban's actions or a bouncer's poll may still be on their way
        after = engine.find(target, layers)
        stale = leftovers(after, applied, target)
    if stale:
        applied += _sweep(stale, applied, target, layers, change_set, reverter, confdir, event)
        after = engine.find(target, layers)
    refused = refusals(after, after.findings, layers)
    refused += path_refusals(after, refused)
    return replace(
        base,
        applied=applied,
        ignored=ignored,
        change_set=change_set.id,
        after=after,
        still_refused=tuple(refused + sshd_refusals),
        events=tuple(events),
    )


# ---------------------------------------------------------------- layers


def select_layers(layers: Sequence[Layer], groups: Optional[Collection[str]]) -> list[Layer]:
    """Only the layers of these LAYER_GROUPS (None: every layer)."""
    if groups is None:
        return list(layers)
    unknown = set(groups) - set(LAYER_GROUPS)
    if unknown:
        raise InputError(
            f"unknown layer group(s) {', '.join(sorted(unknown))}: use {', '.join(LAYER_GROUPS)}"
        )
    names = {name for group in groups for name in LAYER_GROUPS[group]}
    return [layer for layer in layers if layer.name in names]


# ---------------------------------------------------------------- exemptions


def select_exemptions(
    exemptions: Sequence[Exemption], groups: Optional[Collection[str]]
) -> list[Exemption]:
    """The exemptions of the ban sources in these LAYER_GROUPS (None: all)."""
    if groups is None:
        return list(exemptions)
    names = {name for group in groups for name in EXEMPTION_GROUPS.get(group, ())}
    return [e for e in exemptions if e.name in names]


def stage_changes(plans: Sequence[ExemptionPlan]) -> bool:
    """Some exemption plan changes something."""
    return any(not p.is_empty() for p in plans)


def planned_changes(plan: Plan, exempting: Sequence[ExemptionPlan]) -> int:
    """The plan's changes, each a step of the JSON plan: the layers' steps, then each
    exemption's file writes and commands."""
    from unban.exemptions.stage import changes as exemption_changes

    return len(plan.steps) + exemption_changes(exempting)


# ---------------------------------------------------------------- the transaction


def _transaction(
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
    state_dir: Optional[str] = None,
    confdir: Optional[str] = None,
    on_event: Event = _quiet,
) -> tuple[tuple[Batch, ...], str]:
    """Apply `plan` as one change set named `kind` (`unban remove`, `unban delete`), the way
    `unban me` applies its own: files backed up first, everything put back on a failure, and
    `unban undo` puts it back later. Returns (the batches applied, the change set's id)."""
    from unban import fail2ban

    current = fail2ban.settings()
    confdir = confdir or current.confdir
    reverter = Reverter(state_dir or current.state_dir)
    applied, change_set, _ = _transaction(plan, (), layers, (), reverter, confdir, on_event, kind)
    return applied, change_set.id


@contextmanager
def _recording_into(change_set: ChangeSet, layers: Sequence[Layer]) -> Iterator[None]:
    """The layers that change files (fail2ban's database, the hosts files, the owners' rules
    files, sshd's config) back them up into `change_set` while this is open."""
    from unban.layers.fail2ban import Fail2banLayer
    from unban.layers.hosts import HostsLayer
    from unban.layers.sshd_penalty import SshdPenaltyLayer
    from unban.owners.files import FileOwner
    from unban.owners.sshguard import SshguardOwner

    kinds = (Fail2banLayer, HostsLayer, FileOwner, SshguardOwner, SshdPenaltyLayer)
    recording = [layer for layer in layers if isinstance(layer, kinds)]
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


def _sweep(
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


# ---------------------------------------------------------------- records for `unban undo`


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
    state_dir: Optional[str] = None,
    confdir: Optional[str] = None,
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
    from unban import fail2ban
    from unban.recovery import undo_check, undo_handlers

    current = fail2ban.settings()
    confdir = confdir or current.confdir
    reverter = Reverter(state_dir or current.state_dir)
    infos = reverter.list()
    if change_id is None:
        pending = [i for i in infos if not i.finished]
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


def later_overlap(info: Any, infos: Sequence[Any]) -> Any:
    """A later change set, not undone, that changed one of the same files (undo it first)."""
    mine = {r.path for r in info.files}
    for other in infos:
        if int(other.id) <= int(info.id) or other.status == "rolled-back":
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


# ---------------------------------------------------------------- what still refuses it


def refusals(
    report: Report,
    findings: Sequence[Finding],
    layers: Optional[Sequence[Layer]] = None,
) -> list[Refusal]:
    """Each finding that still refuses the address, with the command that would clear it."""
    shown = report.target
    fixes: dict[Finding, str] = {}
    if layers is not None:
        for layer in layers:
            mine = [f for f in findings if f.layer == layer.name]
            if not mine:
                continue
            try:
                for batch in layer.plan(mine):
                    for step in batch.steps:
                        fixes.setdefault(step.finding, step.command)
            except Exception:  # noqa: BLE001 - no command then; the finding still shows
                continue
    out = []
    for finding in findings:
        if finding.on_path is False:
            continue  # it names the address, but a new SYN never meets it: not a refusal
        fix = fixes.get(finding, "")
        argv = tuple(argv_of(fix) or ())
        if not finding.targeted:
            argv = ("unban", "me", shown, "--broad")
            fix = f"unban me {shown} --broad" + (f"  (or: {fix})" if fix else "")
        elif not fix:
            argv, fix = ("unban", "me", shown), f"unban me {shown}"
            if finding.owner not in ("manual", "") and not finding.owner.startswith("fail2ban"):
                argv, fix = (), f"change it with {finding.owner.split(':')[0]}, which owns it"
        what = f"{finding.location()}: {finding.rule}"
        if finding.element:
            what += f" (element {finding.element})"
        kind = "broad" if not finding.targeted else "targeted"
        out.append(
            Refusal(finding.layer, f"{what} [{kind}, owner {finding.owner}]", fix, finding, argv)
        )
    return out


def path_refusals(report: Report, already: Sequence[Refusal]) -> list[Refusal]:
    """The evaluator's verdict, read afresh with `report`: each way to sshd that is not open
    and that no refusal already names (a stop no layer could make a finding of)."""
    if any(r.key in ("iptables", "nftables", "xt_recent", "ipset") for r in already):
        return []
    broad = ("unban", "me", report.target, "--broad")
    return [
        Refusal("firewall", way.line(), " ".join(broad), argv=broad)
        for way in report.reach
        if not way.is_open
    ]


def sshd_checks(
    address: str, user: Optional[str], sshd_config: Optional[str], notes: list[str]
) -> list[Refusal]:
    """sshd's AllowUsers/DenyUsers (for `user`) and MaxStartups, through the doctor's checks.

    Only a check that surely refuses counts; one that only may (no --user given while
    AllowUsers is set, MaxStartups throttling at random) goes to `notes`.
    """
    import ipaddress

    from unban import sshd as sshd_mod
    from unban import sshd_runtime
    from unban.checks.sshd import maxstartups_check, users_check
    from unban.path.model import BLOCKS, MAY_BLOCK

    try:
        binary = sshd_mod.sshd_binary()
        config = sshd_mod.read_config(address, user=user, config_file=sshd_config, sshd=binary)
    except LayerError as exc:
        notes.append(f"sshd not checked: {exc}")
        return []
    port = config.ports[0] if config.ports else 22
    checks = [users_check(sshd_runtime.user_access(config, user, address), user)]
    try:
        load = sshd_runtime.startup_load(
            port, ipaddress.ip_address(address), config.per_source_netblock
        )
        checks.append(maxstartups_check(config, load, address, (), port))
    except LayerError as exc:
        notes.append(f"MaxStartups not checked: {exc}")
    out = []
    for check in checks:
        if check.verdict == BLOCKS:
            out.append(Refusal(check.key, check.summary, check.fix[0] if check.fix else ""))
        elif check.verdict == MAY_BLOCK:
            notes.append(f"{check.title}: {check.summary}")
    return out


# ---------------------------------------------------------------- text


def step_text(step: Step) -> str:
    """What one step does, in words."""
    finding = step.finding
    if finding.layer == "fail2ban":
        where = "" if finding.backend == "server" else " (in its database: the server is stopped)"
        return f"unban {_shown(finding.network)} in fail2ban jail {finding.chain}{where}"
    if finding.layer == "sshguard":
        return f"take it out of sshguard's blacklist {finding.table} line {finding.line}"
    if finding.layer == "crowdsec":
        return f"delete CrowdSec decision {finding.handle} ({finding.rule})"
    if finding.layer == "sshd":
        from unban.layers.sshd_penalty import step_text as sshd_step

        return sshd_step(finding)
    if finding.layer == "hosts" and finding.targeted:
        return f"take it out of {finding.table} line {finding.line}: {finding.rule}"
    if finding.layer == "hosts":
        return (
            f"grant sshd to it at the top of hosts.allow (broad: {finding.table} line "
            f"{finding.line}: {finding.rule})"
        )
    if finding.lift == "admit":
        return (
            f"admit {_shown(finding.network)} at the top of {finding.location()} "
            f"(refused there by: {finding.rule})"
        )
    if finding.element:
        return f"remove {finding.element} from {finding.location()} (dropped by: {finding.rule})"
    return f"remove {finding.location()}: {finding.rule}"


def _shown(network: str) -> str:
    parsed = parse_network(network)
    return show(parsed) if parsed is not None else network


def plan_lines(plan: Plan, exempting: Sequence[ExemptionPlan] = ()) -> list[str]:
    """The plan as `unban me` prints it before applying it."""
    from unban.exemptions.stage import plan_text

    changes = planned_changes(plan, exempting)
    if plan.is_empty() and not stage_changes(exempting):
        lines = [f"nothing to change for {plan.target}"]
    else:
        lines = [f"plan for {plan.target}: {changes} change(s), in this order:"]
    for batch in plan.batches:
        lines.append(f"  [{batch.layer} {batch.scope}]")
        for step in batch.steps:
            lines.append(f"    {step_text(step)}")
            lines.append(f"      $ {step.command}")
    lines.extend(plan_text(exempting))
    lines.extend(render.left_alone_lines(plan, remove="lift"))
    return lines


def describe_batch(batch: Batch, stage: Optional[ExemptionStage] = None) -> list[str]:
    """What one applied batch did, one line per change."""
    if batch.layer == STAGE:
        done = stage.done.get(batch.scope, []) if stage is not None else []
        return [f"done: {line}" for line in done]
    lines = []
    for step in batch.steps:
        finding = step.finding
        if batch.layer == "fail2ban":
            where = "" if batch.scope == "server" else f" in its database ({batch.scope})"
            lines.append(
                f"done: fail2ban unbanned {_shown(finding.network)} in jail {finding.chain}{where}"
            )
        elif batch.layer == "sshd":
            lines.append(f"done: {step_text(step)}; sshd reloaded")
        elif batch.layer == "hosts" and finding.targeted:
            lines.append(
                f"done: took {finding.network} out of {finding.table} line {finding.line} "
                f"({finding.rule})"
            )
        elif batch.layer == "hosts":
            lines.append(
                f"done: granted sshd at the top of {batch.scope} (broad: {finding.table} "
                f"line {finding.line}: {finding.rule})"
            )
        elif finding.element:
            lines.append(
                f"done: removed {finding.element} from {finding.location()} ($ {step.command})"
            )
        else:
            lines.append(f"done: removed {finding.location()}: {finding.rule}")
    return lines


def text_lines(result: MeResult) -> list[str]:
    """What `unban me` prints after the plan and the steps: the check, then the last line."""
    lines: list[str] = []
    for note in result.notes:
        lines.append(f"note: {note}")
    if result.dry_run:
        lines.append("dry run: nothing changed")
    elif result.changed:
        lines.append(
            f"change set {result.change_set}: `unban undo {result.change_set}` puts it all back"
        )
    if result.still_refused:
        lines.append(f"still refusing {result.target}:")
        for refusal in result.still_refused:
            lines.append(f"  {refusal.key}: {refusal.what}")
            if refusal.fix:
                lines.append(f"      fix: {refusal.fix}")
    lines.append(last_line(result))
    return lines


def last_line(result: MeResult) -> str:
    target = result.target
    keys = ", ".join(dict.fromkeys(r.key for r in result.still_refused))
    if result.dry_run:
        if result.still_refused:
            return f"{target} would still be refused by: {keys}"
        return f"{target} would be unblocked everywhere unban looks"
    if result.still_refused:
        verdict = "is still refused by" if result.changed or result.blocked else "is refused by"
        return f"{target} {verdict}: {keys} (see the fixes above)"
    report = result.after if result.after is not None else result.before
    ways = "".join(f"; {way.line()}" for way in report.reach)
    checked = " (checked again)" if result.after is not None else ""
    return f"{target} is now unblocked everywhere unban looks{checked}{ways}"


__all__ = [
    "LAYER_GROUPS",
    "ME_BATCH",
    "MeResult",
    "Refusal",
    "UndoResult",
    "default_layers",
    "rebuild",
    "run_me",
    "text_lines",
    "undo",
]
