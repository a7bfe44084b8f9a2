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
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from typing import TYPE_CHECKING, Optional

from unban import engine
from unban.address import Network, show
from unban.errors import ExitStatus, InputError
from unban.layers import Layer
from unban.model import Batch, Plan, Report
from unban.refusals import Refusal, path_refusals, refusals, sshd_checks
from unban.settings import Settings
from unban.system import both

if TYPE_CHECKING:
    from unban.exemptions import Exemption, ExemptionPlan
    from unban.transaction import Event

# The exemptions, the change set and the transaction are imported where a run needs them: a
# run that finds nothing to change and exempts nothing (heal's usual run) never loads them.

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


# Exemptions of the ban sources each LAYER_GROUPS group holds (heal's `layers`).
EXEMPTION_GROUPS = {"fail2ban": ("fail2ban",), "owners": ("sshguard", "crowdsec")}


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


def summary_line(result: MeResult) -> str:
    from unban.steptext import planned_changes

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
    on_event: Optional[Event] = None,
    layers: Optional[Sequence[Layer]] = None,
    exemptions: Optional[Sequence[Exemption]] = None,
    confdir: str,
    state_dir: str,
    change_kind: str = "me",
) -> MeResult:
    """Unblock `target` in every layer, in one transaction; see the module docstring.

    `groups`: only these LAYER_GROUPS ("firewall", "fail2ban", "hosts", "owners", "sshd"; None:
    all), and the exemptions of their ban sources (EXEMPTION_GROUPS). `ignore`: also exempt the
    address in every ban source present (`exemptions`, default: unban.exemptions').
    `check_sshd`: also ask sshd (AllowUsers/DenyUsers for `user`, MaxStartups) what still
    refuses it. `on_event` gets each "what it did" line as it happens (the CLI prints them;
    heal passes none). `keep_sshd_exempt`: put the address into sshd's
    PerSourcePenaltyExemptList even without an active penalty (heal keeps protected addresses
    there).
    `confdir`/`state_dir`: fail2ban's config dir and unban's state dir (--fail2ban-conf,
    --state-dir).
    `change_kind` names the change set in `unban history` ("heal" for heal's runs).
    """
    if layers is None:
        layers = select_layers(
            engine.default_layers(
                Settings(confdir, state_dir),
                sshd_config=sshd_config,
                keep_sshd_exempt=keep_sshd_exempt,
                without_sshd=groups is not None and "sshd" not in groups,
                # `me` itself deletes what its find read; heal's runs mostly find nothing
                take_handles=change_kind == "me" and not dry_run,
            ),
            groups,
        )
    layers = list(layers)
    # Without `ignore` nothing is exempted, so the run records no exemption to put back either.
    chosen: Optional[list[Exemption]] = None
    if ignore:
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
    sshd_notes: list[str] = []

    def ask_sshd() -> list[Refusal]:
        if not check_sshd or target.num_addresses != 1:
            return []
        return sshd_checks(shown, user, sshd_config, sshd_notes)

    # sshd is asked while the layers are read
    before, sshd_refusals = both(
        partial(engine.find, target, layers, sshd_config=sshd_config), ask_sshd
    )
    plan = engine.plan(before, layers, broad=broad, on_path_only=True)
    exempting: tuple[ExemptionPlan, ...] = ()
    exempts = False
    if chosen is not None:
        from unban.exemptions import IGNORE
        from unban.exemptions import plans as exemption_plans
        from unban.exemptions.stage import any_changes
        from unban.exemptions.stage import notes as exemption_notes

        exempting = tuple(exemption_plans(chosen, IGNORE, target, notes))
        notes.extend(exemption_notes(exempting))  # the others' notes are in the plan's lines
        exempts = any_changes(exempting)
    if on_event is not None:
        from unban.steptext import plan_lines

        for line in plan_lines(plan, exempting):
            on_event(line)
    notes += sshd_notes
    base = MeResult(shown, dry_run, before, plan, exempting, notes=tuple(notes))
    nothing = plan.is_empty() and not exempts
    if dry_run or nothing:
        refused = refusals(before, plan.skipped, layers)
        if nothing:
            refused += path_refusals(before, refused)
        return replace(base, still_refused=tuple(refused + sshd_refusals))
    from unban.reverter import Reverter
    from unban.transaction import apply_as_change_set, leftovers, settle_time, sweep_leftovers

    events: list[str] = []

    def event(line: str) -> None:
        events.append(line)
        if on_event is not None:
            on_event(line)

    reverter = Reverter(state_dir)
    applied, change_set, ignored = apply_as_change_set(
        plan,
        exempting,
        layers,
        chosen or (),
        reverter,
        confdir,
        event,
        change_kind,
    )
    after = engine.find(
        target, layers, sshd_config=sshd_config
    )  # layers read the system again after a change
    stale = leftovers(after, applied, target)
    deadline = time.monotonic() + settle_time(applied, layers)
    while stale and time.monotonic() < deadline:
        time.sleep(0.25)  # fail2ban's actions or a bouncer's poll may still be on their way
        after = engine.find(target, layers, sshd_config=sshd_config)
        stale = leftovers(after, applied, target)
    if stale:
        applied += sweep_leftovers(
            stale, applied, target, layers, change_set, reverter, confdir, event
        )
        after = engine.find(target, layers, sshd_config=sshd_config)
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


def _default_exemptions(confdir: str) -> Sequence[Exemption]:
    """unban.exemptions' list, imported when a run first needs it (tests replace this)."""
    from unban.exemptions import default_exemptions

    return default_exemptions(confdir)


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


def select_exemptions(
    exemptions: Sequence[Exemption], groups: Optional[Collection[str]]
) -> list[Exemption]:
    """The exemptions of the ban sources in these LAYER_GROUPS (None: all)."""
    if groups is None:
        return list(exemptions)
    names = {name for group in groups for name in EXEMPTION_GROUPS.get(group, ())}
    return [e for e in exemptions if e.name in names]


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
