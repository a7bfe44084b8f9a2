"""Exemptions from future bans: ignore, unignore, in every ban source here (fail2ban's ignoreip,
sshguard's whitelist, CrowdSec's allowlist or whitelist parser) or only `--only` ones.
fail2ban's config dir and the state dir are the global --fail2ban-conf / --state-dir options,
because `find` and `remove` read fail2ban too."""

from collections.abc import Sequence
from typing import Annotated, Any, Optional

import typer

from unban import engine
from unban.address import Network, show
from unban.cli.base import (
    EXEMPTIONS,
    DryRunOption,
    JsonOption,
    app,
    changing,
    emit,
    guarded,
    helptext,
    settings,
)
from unban.errors import ExitStatus, UnbanError
from unban.exemptions import Exemption, ExemptionPlan
from unban.reverter import Reverter
from unban.settings import Settings
from unban.system import require_root

AddressArgument = Annotated[
    str, typer.Argument(metavar="ADDRESS", help="IPv4/IPv6 address or CIDR.")
]
JailOption = Annotated[
    Optional[list[str]],
    typer.Option("--jail", metavar="JAIL", help="Only this fail2ban jail (repeat for more)."),
]
OnlyOption = Annotated[
    Optional[list[str]],
    typer.Option(
        "--only",
        metavar="SOURCE",
        help="Only this ban source: fail2ban, sshguard or crowdsec (repeat for more).",
    ),
]
ForceOption = Annotated[
    bool, typer.Option("--force", help="Allow ranges wider than /16 (IPv4) or /48 (IPv6).")
]


def _ignore_lines(plan: Any, result: Any, dry_run: bool, banned: Any) -> list[str]:
    """fail2ban's part of `unban ignore`/`unignore`."""
    verb = "ignore" if plan.operation == "ignore" else "stop ignoring"
    lines = [f"{verb} {plan.address} in fail2ban ({plan.confdir}):"]
    for state in plan.jails:
        lines.append(f"  {state.jail}: {state.detail}")
    for note in plan.notes:
        lines.append(f"  note: {note}")
    for edit in plan.edits:
        if dry_run:
            lines.extend(f"    {line}" for line in edit.diff())
        else:
            lines.append(f"  wrote {edit.path}" + ("" if edit.before is not None else " (new)"))
    for change in plan.live:
        lines.append(f"  live: $ {change.shell}")
    if plan.is_empty():
        if plan.operation == "ignore":
            lines.append(f"{plan.address} is already ignored in every jail asked; nothing written")
        else:
            lines.append(f"nothing to take out for {plan.address}; nothing written")
    elif not dry_run and result is not None and result.verified:
        lines.append(f"  {result.verified}")
    for finding in banned or []:
        lines.append(
            f"still banned in jail {finding.chain}: `unban remove {plan.address}` lifts the ban"
        )
    return lines


def _exemption_lines(plan: Any, dry_run: bool) -> list[str]:
    """sshguard's or CrowdSec's part of `unban ignore`/`unignore`."""
    from unban.exemptions import plan_lines

    verb = "exempt" if plan.operation == "ignore" else "stop exempting"
    lines = [f"{verb} {plan.address} in {plan.source}:"]
    lines += [f"  {line}" for line in plan_lines(plan, diff=dry_run)]
    if plan.is_empty():
        already = "already exempt" if plan.operation == "ignore" else "not exempt"
        lines.append(f"  {plan.address} is {already} there; nothing written")
    return lines


def _ignore_command(
    operation: str,
    address: str,
    jails: Optional[list[str]],
    only: Optional[list[str]],
    force: bool,
    dry_run: bool,
    as_json: bool,
    run: Settings,
) -> int:
    from unban import exemptions
    from unban.contract import commands as contract
    from unban.exemptions.crowdsec import CrowdsecExemption
    from unban.exemptions.fail2ban import Fail2banExemption, installed
    from unban.exemptions.sshguard import SshguardExemption
    from unban.fail2ban import ignorelist
    from unban.layers.fail2ban import Fail2banLayer

    target = ignorelist.parse_ignore_target(address, force=force)
    if operation == "ignore":
        ignorelist.check_range(target, force=force)
    require_root()
    confdir = run.fail2ban_conf
    with changing(run, changes=not dry_run):
        named = set(only or ())
        # Named sources are planned even when stopped; fail2ban wherever it is installed (a
        # missing or broken config is then an error, as it always was).
        chosen = exemptions.select(
            [
                Fail2banExemption(
                    confdir,
                    strict=bool(jails) or "fail2ban" in named or installed(),
                    jails=jails or (),
                    force=force,
                ),
                SshguardExemption(require_running="sshguard" not in named),
                CrowdsecExemption(require_running="crowdsec" not in named),
            ],
            only,
        )
        planned = [p for p in (e.plan(operation, target) for e in chosen) if p is not None]
        change_set = None
        if not dry_run and any(not p.is_empty() for p in planned):
            change_set = _apply_exemptions(
                planned, chosen, Reverter(run.state_dir), target, confdir
            )
        fail2ban_plan = next((p.payload for p in planned if p.source == "fail2ban"), None)
        fail2ban_result = next(
            (e.results[-1] for e in chosen if isinstance(e, Fail2banExemption) and e.results), None
        )
    banned = []
    if operation == "ignore" and fail2ban_plan is not None:
        banned = [f for f in Fail2banLayer(confdir, run.state_dir).find(target) if f.targeted]
    lines: list[str] = []
    if fail2ban_plan is not None:
        lines += _ignore_lines(fail2ban_plan, fail2ban_result, dry_run, banned)
    for plan in planned:
        if plan.source != "fail2ban":
            lines += _exemption_lines(plan, dry_run)
    if not planned:
        lines.append("no ban source here to exempt it from (fail2ban, sshguard, crowdsec)")
    if dry_run and any(not p.is_empty() for p in planned):
        lines.append("dry run: nothing changed")
    elif change_set is not None:
        lines.append(f"change set {change_set}: `unban undo {change_set}` undoes it")
    document = contract.ignore(
        operation,
        show(target),
        planned,
        fail2ban_plan=fail2ban_plan,
        dry_run=dry_run,
        change_set=change_set,
        verified=fail2ban_result.verified if fail2ban_result else "",
        still_banned=banned,
    )
    emit(as_json, document, lines)
    return ExitStatus.OK


def _apply_exemptions(
    planned: Sequence[ExemptionPlan],
    chosen: Sequence[Exemption],
    reverter: Reverter,
    target: Network,
    confdir: str,
) -> str:
    """Apply the plans in one change set named by the operation (`unban history`), each batch
    journaled before it is applied (a killed run is put back by the next command); on a
    failure put everything back. Its id."""
    from unban.errors import ApplyError
    from unban.exemptions.stage import ExemptionStage, batches
    from unban.journal import ChangeSetJournal
    from unban.model import Plan
    from unban.recovery import undo_check, undo_handlers
    from unban.reverter import FAILED
    from unban.undo import batch_record

    operation = planned[0].operation
    change_set = reverter.begin(f"{operation} {show(target)} (exemptions)", kind=operation)
    stage = ExemptionStage(change_set, chosen)

    def put_back(cause: Exception) -> ApplyError:
        try:
            reverter.rollback(
                change_set.id,
                handlers=undo_handlers(confdir, str(reverter.state_dir), (), chosen),
                check=undo_check(confdir),
                status=FAILED,
            )
        except UnbanError as again:
            return ApplyError(
                f"{cause}; putting things back failed too: {again}. Backups are in "
                f"{change_set.path}",
                rollback_failed=True,
            )
        return ApplyError(
            f"{cause}; change set {change_set.id} was rolled back, nothing changed",
            rollback_failed=False,
        )

    journal = ChangeSetJournal(change_set, lambda batch: batch_record(batch, stage), put_back)
    engine.apply(Plan(show(target), tuple(batches(planned))), [stage], journal=journal)
    change_set.finalize()
    return str(change_set.id)


@app.command(
    rich_help_panel=EXEMPTIONS,
    help=helptext(
        "Exempt ADDRESS from future bans in every ban source here.",
        "fail2ban: the effective ignoreip of every enabled jail (or --jail J), as fail2ban"
        " computes it, in the .local file that wins (never jail.conf); checked with"
        " `fail2ban-client -d` and added live. A running sshguard: its whitelist file, then a"
        " restart. A running CrowdSec: its allowlist (cscli 1.6+) or a whitelist parser, then a"
        " reload. --only picks sources (named ones even when stopped). A second run writes"
        " nothing.",
        examples=(
            "unban ignore 203.0.113.4 --dry-run",
            "unban ignore 2001:db8::/64 --jail sshd",
            "unban ignore 203.0.113.4 --only sshguard",
        ),
    ),
)
def ignore(
    ctx: typer.Context,
    address: AddressArgument,
    *,
    jail: JailOption = None,
    only: OnlyOption = None,
    force: ForceOption = False,
    dry_run: DryRunOption = False,
    json_output: JsonOption = False,
) -> None:
    guarded(
        lambda: _ignore_command(
            "ignore", address, jail, only, force, dry_run, json_output, settings(ctx)
        ),
        ctx,
    )


@app.command(
    rich_help_panel=EXEMPTIONS,
    help=helptext(
        "Take ADDRESS back out of ignoreip and the whitelists.",
        examples=("unban unignore 203.0.113.4", "unban unignore 203.0.113.4 --only crowdsec"),
    ),
)
def unignore(
    ctx: typer.Context,
    address: AddressArgument,
    *,
    jail: JailOption = None,
    only: OnlyOption = None,
    force: ForceOption = False,
    dry_run: DryRunOption = False,
    json_output: JsonOption = False,
) -> None:
    guarded(
        lambda: _ignore_command(
            "unignore", address, jail, only, force, dry_run, json_output, settings(ctx)
        ),
        ctx,
    )
