"""Finding and removing blocks: find, list, remove, delete."""

import time
from collections.abc import Sequence
from dataclasses import replace
from enum import Enum
from functools import partial
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from unban.cli.base import (
    BLOCKS,
    DryRunOption,
    JsonOption,
    app,
    changing,
    emit,
    emit_for_people,
    family,
    guarded,
    helptext,
    progress,
    settings,
)
from unban.errors import ExitStatus, InputError
from unban.settings import Settings
from unban.system import both, require_root

if TYPE_CHECKING:  # the commands import what they use: `unban --help` stays quick
    from unban.address import Network
    from unban.model import Batch, Finding, Plan, Report
    from unban.progress import Progress

AddressArgument = Annotated[
    str, typer.Argument(metavar="ADDRESS", help="IPv4/IPv6 address or CIDR.")
]


class Backend(str, Enum):
    nft = "nft"
    legacy = "legacy"


@app.command(
    rich_help_panel=BLOCKS,
    help=helptext(
        "Everything that blocks ADDRESS, on every layer.",
        "fail2ban bans, iptables/ip6tables rules (both backends), nft rules and sets, ipsets,"
        " blocking routes, xt_recent lists, hosts.allow/hosts.deny entries, sshguard's blacklist"
        " and CrowdSec's decisions, each with its owner and whether it is targeted (only this"
        " address) or broad (a wider network); and whether ADDRESS is exempt from future bans"
        " in each ban source here.",
        "Exit 0 when nothing blocks ADDRESS, 3 when something does (as doctor, probe and me),"
        ' so `if unban find ADDRESS; then ...` reads as "if nothing blocks it".',
        examples=("unban find 203.0.113.4", "unban find 2001:db8::/64 --json"),
    ),
)
def find(ctx: typer.Context, address: AddressArgument, *, json_output: JsonOption = False) -> None:
    def body() -> int:
        from unban.address import parse_target
        from unban.readahead import start_reads

        target = parse_target(address)
        require_root()
        start_reads(target)  # while the layers are imported
        from unban import engine, tables
        from unban.contract import commands as contract
        from unban.render import report_text

        layers = engine.default_layers(settings(ctx))
        with progress(json_output) as shown:
            shown.step(f"reading every layer for {address}")
            report, states = both(  # the ban sources' exemptions are read meanwhile
                partial(engine.find, target, layers),
                partial(_exemption_states, target, settings(ctx)),
            )
            report = replace(report, exemptions=tuple(states))
        code = ExitStatus.STILL_BLOCKED if report.refused else ExitStatus.OK
        emit_for_people(
            json_output,
            contract.find(report, _refusals(report, report.findings, layers), code),
            report_text(report),
            lambda: tables.report_tables(report),
        )
        return code

    guarded(body, ctx)


def _exemption_states(target: "Network", run: Settings) -> list[Any]:
    """find's "exempt from future bans" answer for each ban source here."""
    from unban import exemptions

    return exemptions.states(exemptions.default_exemptions(run.fail2ban_conf), target)


@app.command(
    "list",
    rich_help_panel=BLOCKS,
    help=helptext(
        "Every rule (numbered), nft set, ipset, route and xt_recent list.",
        "Rule numbers are those `iptables -L --line-numbers` shows, for both iptables backends;"
        " `unban delete CHAIN NUMBER` takes them.",
        examples=("unban list", "unban list --chain f2b-sshd -4"),
    ),
)
def list_(
    ctx: typer.Context,
    *,
    table: Annotated[Optional[str], typer.Option("--table", "-t", help="Only this table.")] = None,
    chain: Annotated[Optional[str], typer.Option("--chain", help="Only this chain.")] = None,
    ipv4: Annotated[bool, typer.Option("-4", help="IPv4 only.")] = False,
    ipv6: Annotated[bool, typer.Option("-6", help="IPv6 only.")] = False,
    json_output: JsonOption = False,
) -> None:
    def body() -> int:
        from unban import engine, tables
        from unban.contract import commands as contract
        from unban.layers import ListQuery
        from unban.render import absent_lines, listing_text

        require_root()
        query = ListQuery(table=table, chain=chain, family=family(ipv4, ipv6))
        layers = engine.default_layers(settings(ctx))
        with progress(json_output) as shown:
            shown.step("reading every layer")
            listings = [listing for layer in layers for listing in layer.listings(query)]
            statuses = [status for layer in layers for status in layer.status()]
        emit_for_people(
            json_output,
            contract.listing(listings, statuses),
            [*listing_text(listings), *absent_lines(statuses)],
            lambda: tables.listing_tables(listings, statuses),
        )
        return ExitStatus.OK

    guarded(body, ctx)


@app.command(
    rich_help_panel=BLOCKS,
    help=helptext(
        "Remove every targeted block on ADDRESS (undo puts it back).",
        "One batch per table and family; broad blocks (wider networks) too with --broad. Then"
        " finds again and says what still blocks ADDRESS (exit 3 if anything does).",
        examples=("unban remove 203.0.113.4 --dry-run", "unban remove 203.0.113.4 --broad"),
    ),
)
def remove(
    ctx: typer.Context,
    address: AddressArgument,
    *,
    broad: Annotated[
        bool, typer.Option("--broad", help="Also remove rules for wider networks holding ADDRESS.")
    ] = False,
    dry_run: DryRunOption = False,
    json_output: JsonOption = False,
) -> None:
    def body() -> int:
        from unban import engine
        from unban.address import parse_target

        target = parse_target(address)
        require_root()
        run = settings(ctx)
        layers = engine.default_layers(run)
        with progress(json_output) as shown:
            shown.step(f"reading every layer for {address}")
            with changing(run, changes=not dry_run):
                before = engine.find(target, layers)
                plan = engine.plan(before, layers, broad=broad)
                return _execute(
                    plan,
                    target,
                    "remove",
                    layers,
                    shown,
                    run,
                    before=before,
                    dry_run=dry_run,
                    json_output=json_output,
                )

    guarded(body, ctx)


@app.command(
    rich_help_panel=BLOCKS,
    help=helptext(
        "Delete rule NUMBER of CHAIN, never a rule that slid into it.",
        "Like `iptables -D CHAIN NUMBER`, made safe.",
        "The rule's identity is checked against a fresh read right before it is deleted; with"
        " --expect, only a rule matching ADDRESS is deleted. One change set `unban undo` puts"
        " back.",
        examples=("unban delete f2b-sshd 2 --expect 203.0.113.4 --dry-run",),
    ),
)
def delete(
    ctx: typer.Context,
    chain: Annotated[
        str, typer.Argument(metavar="CHAIN", help="Chain name, e.g. f2b-sshd or INPUT.")
    ],
    number: Annotated[
        int, typer.Argument(metavar="NUMBER", help="Rule number as `unban list` shows it.")
    ],
    *,
    table: Annotated[str, typer.Option("--table", "-t", help="iptables table.")] = "filter",
    ipv6: Annotated[bool, typer.Option("-6", help="ip6tables instead of iptables.")] = False,
    backend: Annotated[
        Optional[Backend], typer.Option("--backend", help="Which iptables backend holds CHAIN.")
    ] = None,
    expect: Annotated[
        Optional[str], typer.Option("--expect", help="Refuse unless the rule matches this address.")
    ] = None,
    dry_run: DryRunOption = False,
    json_output: JsonOption = False,
) -> None:
    def body() -> int:
        from unban.address import family_of, parse_target
        from unban.layers.xtables import XtablesLayer
        from unban.layers.xtables_plan import build_batches
        from unban.model import Plan

        expected = parse_target(expect) if expect is not None else None
        rule_family = "ipv6" if ipv6 else "ipv4"
        if expected is not None and family_of(expected) != rule_family:
            raise InputError(f"--expect {expect} is not an {rule_family} address (use -6 for IPv6)")
        require_root()
        with changing(settings(ctx), changes=not dry_run):
            xtables = XtablesLayer()
            finding = xtables.resolve(
                table,
                chain,
                number,
                backend=backend.value if backend else None,
                family=rule_family,
                expect=expected,
            )
            batches = tuple(build_batches([finding], by_number=True))
            plan = Plan(target=f"{chain} rule {number}", batches=batches)
            with progress(json_output) as shown:
                return _execute(
                    plan,
                    expected,
                    "delete",
                    [xtables],
                    shown,
                    settings(ctx),
                    before=None,
                    dry_run=dry_run,
                    json_output=json_output,
                )

    guarded(body, ctx)


def _execute(
    plan: "Plan",
    target: "Optional[Network]",
    kind: str,
    layers: list[Any],
    shown: "Progress",
    run: Settings,
    *,
    before: "Optional[Report]",
    dry_run: bool,
    json_output: bool,
) -> int:
    """Print the plan; unless dry-run, apply it as one change set and find the address again.
    `before`: what `find` read for the plan (None for `delete`, which reads one rule)."""
    from unban import tables, transaction
    from unban.address import show
    from unban.contract import commands as contract
    from unban.model import Report
    from unban.render import plan_text

    shown.idle()
    address = show(target) if target is not None else None
    dry_note = ["dry run: nothing changed"] if dry_run and plan.steps else []
    if dry_run or plan.is_empty():
        refused = _refusals(Report(plan.target, plan.skipped), plan.skipped, layers)
        code = ExitStatus.STILL_BLOCKED if plan.skipped else ExitStatus.OK
        document = contract.remove(
            kind, plan, code, address=address, dry_run=dry_run, refused=refused, report=before
        )
        emit_for_people(
            json_output,
            document,
            [*plan_text(plan), *dry_note],
            lambda: [*tables.plan_tables(plan), *dry_note],
        )
        return code
    applying = "applying the plan"
    if not json_output:
        emit_for_people(False, None, plan_text(plan), lambda: tables.plan_tables(plan))
        shown.step(applying)

    def echo(line: str) -> None:
        if not json_output:
            shown.echo(line, applying)

    applied, change_set = transaction.apply_recorded(
        plan,
        layers,
        kind=kind,
        state_dir=run.state_dir,
        confdir=run.fail2ban_conf,
        on_event=echo,
    )
    remaining: Optional[Report] = None
    refused = []
    if target is not None:
        shown.step("checking again")
        remaining = _settled(target, applied, layers, run)
        refused = _refusals(remaining, remaining.findings, layers)
    shown.idle()
    code = ExitStatus.STILL_BLOCKED if remaining and remaining.refused else ExitStatus.OK
    document = contract.remove(
        kind,
        plan,
        code,
        address=address,
        dry_run=False,
        refused=refused,
        report=remaining,
        change_set=change_set,
    )
    emit(
        json_output,
        document,
        [f"change set {change_set}: `unban undo {change_set}` puts it back"]
        + _remaining_text(remaining),
    )
    return code


def _refusals(report: "Report", findings: "Sequence[Finding]", layers: list[Any]) -> list[Any]:
    """What refuses the address, each with the fix (refusals.refusals), and the ways to sshd
    that are not open though no finding says why."""
    from unban.refusals import path_refusals, refusals

    refused = refusals(report, findings, layers)
    return refused + path_refusals(report, refused)


def _settled(
    target: "Network", applied: "Sequence[Batch]", layers: Sequence[Any], run: Settings
) -> "Report":
    """find again, waiting (bounded) while a live owner's own lift (CrowdSec's bouncer) has not
    reached the kernel yet."""
    from unban import engine
    from unban.transaction import owner_leftovers, settle_time

    deadline = time.monotonic() + settle_time(applied, layers)
    while True:
        remaining = engine.find(target, engine.default_layers(run))
        if not owner_leftovers(remaining, applied, target) or time.monotonic() > deadline:
            return remaining
        time.sleep(0.25)


def _remaining_text(remaining: "Optional[Report]") -> list[str]:
    from unban.render import report_text

    if remaining is None:
        return []
    if not remaining.findings:
        return [f"{remaining.target} is no longer blocked by fail2ban or any packet filter"]
    return [f"still blocking {remaining.target}:", *report_text(remaining)[1:]]
