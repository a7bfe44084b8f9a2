"""fail2ban's ignoreip: ignore, unignore. fail2ban's config dir and the state dir are the global
--fail2ban-conf / --state-dir options, because `find` and `remove` read fail2ban too."""

from typing import Annotated, Any, Optional

import typer

from unban.cli.base import (
    FAIL2BAN,
    DryRunOption,
    JsonOption,
    Options,
    app,
    changing,
    emit,
    guarded,
    helptext,
)
from unban.errors import ExitStatus
from unban.system import require_root

AddressArgument = Annotated[
    str, typer.Argument(metavar="ADDRESS", help="IPv4/IPv6 address or CIDR.")
]
JailOption = Annotated[
    Optional[list[str]],
    typer.Option("--jail", metavar="JAIL", help="Only this jail (repeat for more)."),
]
ForceOption = Annotated[
    bool, typer.Option("--force", help="Allow ranges wider than /16 (IPv4) or /48 (IPv6).")
]


def _ignore_lines(plan: Any, result: Any, dry_run: bool, banned: Any) -> list[str]:
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
    elif dry_run:
        lines.append("dry run: nothing changed")
    elif result is not None:
        if result.verified:
            lines.append(f"  {result.verified}")
        lines.append(f"change set {result.change_set}: `unban undo {result.change_set}` undoes it")
    for finding in banned or []:
        lines.append(
            f"still banned in jail {finding.chain}: `unban remove {plan.address}` lifts the ban"
        )
    return lines


def _ignore_command(
    operation: str,
    address: str,
    jails: Optional[list[str]],
    force: bool,
    dry_run: bool,
    as_json: bool,
) -> int:
    from unban.contract import commands as contract
    from unban.fail2ban import ignoreip
    from unban.layers.fail2ban import Fail2banLayer
    from unban.reverter import Reverter

    target = ignoreip.parse_ignore_target(address, force=force)
    if operation == "ignore":
        ignoreip.check_range(target, force=force)
    require_root()
    confdir = Options.fail2ban_conf
    with changing(changes=not dry_run):
        plan = ignoreip.plan(operation, confdir, target, jails or [])
        result = None
        if not dry_run and not plan.is_empty():
            result = ignoreip.apply(plan, Reverter(Options.state_dir), target)
    banned = []
    if operation == "ignore":
        banned = [f for f in Fail2banLayer(confdir, Options.state_dir).find(target) if f.targeted]
    document = contract.ignore(
        plan,
        dry_run=dry_run,
        change_set=result.change_set if result else None,
        verified=result.verified if result else "",
        still_banned=banned,
    )
    emit(as_json, document, _ignore_lines(plan, result, dry_run, banned))
    return ExitStatus.OK


@app.command(
    rich_help_panel=FAIL2BAN,
    help=helptext(
        "Exempt ADDRESS from fail2ban bans (ignoreip, config and live).",
        "Puts ADDRESS into the effective ignoreip of every enabled jail (or --jail J), as fail2ban"
        " computes it, in the .local file that wins (never jail.conf); checks the result with"
        " `fail2ban-client -d` and adds it live. A second run writes nothing.",
        examples=("unban ignore 203.0.113.4 --dry-run", "unban ignore 2001:db8::/64 --jail sshd"),
    ),
)
def ignore(
    address: AddressArgument,
    *,
    jail: JailOption = None,
    force: ForceOption = False,
    dry_run: DryRunOption = False,
    json_output: JsonOption = False,
) -> None:
    guarded(lambda: _ignore_command("ignore", address, jail, force, dry_run, json_output))


@app.command(
    rich_help_panel=FAIL2BAN,
    help=helptext(
        "Take ADDRESS back out of fail2ban's ignoreip.",
        examples=("unban unignore 203.0.113.4",),
    ),
)
def unignore(
    address: AddressArgument,
    *,
    jail: JailOption = None,
    force: ForceOption = False,
    dry_run: DryRunOption = False,
    json_output: JsonOption = False,
) -> None:
    guarded(lambda: _ignore_command("unignore", address, jail, force, dry_run, json_output))
