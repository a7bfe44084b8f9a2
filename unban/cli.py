"""The command line. Thin: parse options, call the engine, print, map errors to exit codes."""

import json
import sys
from collections.abc import Iterable
from enum import Enum
from typing import Any, Callable, Optional

import typer
from typing_extensions import Annotated

from unban import engine
from unban.address import Network, family_of, parse_target
from unban.errors import ExitStatus, InputError, UnbanError
from unban.layers import ListQuery
from unban.layers.xtables import XtablesLayer, build_number_batch
from unban.model import Batch, Plan, Report, as_json
from unban.render import absent_lines, listing_text, plan_text, report_text
from unban.system import require_root

EXIT_CODES_HELP = (
    "Exit codes: 0 done or nothing to do; 1 failed, changes put back; 2 bad usage or input, "
    "nothing changed; 3 done, but something still blocks the address; 4 not root; "
    "5 failed and putting changes back failed too."
)

app = typer.Typer(
    name="unban",
    help=f"Get a locked-out SSH client back in, safely. {EXIT_CODES_HELP}",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


class Backend(str, Enum):
    nft = "nft"
    legacy = "legacy"


class _Options:
    debug = False


JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON on stdout, nothing else.")]
DryRunOption = Annotated[
    bool, typer.Option("--dry-run", help="Print the plan and the commands; change nothing.")
]


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
) -> None:
    _Options.debug = debug


def _guarded(body: Callable[[], int]) -> None:
    """Run a command body; turn UnbanError into one line on stderr and its exit code."""
    try:
        code = body()
    except UnbanError as exc:
        if _Options.debug:
            raise
        typer.echo(f"unban: {exc}", err=True)
        raise typer.Exit(int(exc.exit_status)) from None
    except KeyboardInterrupt:
        typer.echo("unban: interrupted", err=True)
        raise typer.Exit(int(ExitStatus.FAILED)) from None
    except Exception as exc:
        if _Options.debug:
            raise
        typer.echo(
            f"unban: unexpected error: {type(exc).__name__}: {exc} (--debug shows where)", err=True
        )
        raise typer.Exit(int(ExitStatus.FAILED)) from None
    raise typer.Exit(code)


def _emit(as_json_output: bool, data: Any, lines: Iterable[str]) -> None:
    if as_json_output:
        sys.stdout.write(json.dumps(as_json(data), indent=2) + "\n")
    else:
        for line in lines:
            typer.echo(line)


def _family(ipv4: bool, ipv6: bool) -> Optional[str]:
    if ipv4 and ipv6:
        return None
    return "ipv4" if ipv4 else "ipv6" if ipv6 else None


@app.command("list")
def list_(
    *,
    table: Annotated[Optional[str], typer.Option("--table", "-t", help="Only this table.")] = None,
    chain: Annotated[Optional[str], typer.Option("--chain", help="Only this chain.")] = None,
    ipv4: Annotated[bool, typer.Option("-4", help="IPv4 only.")] = False,
    ipv6: Annotated[bool, typer.Option("-6", help="IPv6 only.")] = False,
    json_output: JsonOption = False,
) -> None:
    """Every chain with numbered rules (both iptables backends), nft tables and sets, ipsets,
    blocking routes and xt_recent lists."""

    def body() -> int:
        require_root()
        query = ListQuery(table=table, chain=chain, family=_family(ipv4, ipv6))
        layers = engine.default_layers()
        listings = [listing for layer in layers for listing in layer.listings(query)]
        statuses = [status for layer in layers for status in layer.status()]
        _emit(
            json_output,
            {"listings": listings, "layers": statuses},
            [*listing_text(listings), *absent_lines(statuses)],
        )
        return ExitStatus.OK

    _guarded(body)


@app.command()
def find(
    address: Annotated[str, typer.Argument(help="IPv4/IPv6 address or CIDR.")],
    *,
    json_output: JsonOption = False,
) -> None:
    """Everything in the packet filters that blocks ADDRESS."""

    def body() -> int:
        target = parse_target(address)
        require_root()
        report = engine.find(target, engine.default_layers())
        _emit(json_output, report, report_text(report))
        return ExitStatus.OK

    _guarded(body)


@app.command()
def remove(
    address: Annotated[str, typer.Argument(help="IPv4/IPv6 address or CIDR.")],
    *,
    broad: Annotated[
        bool, typer.Option("--broad", help="Also remove rules for wider networks holding ADDRESS.")
    ] = False,
    dry_run: DryRunOption = False,
    json_output: JsonOption = False,
) -> None:
    """Remove every targeted block on ADDRESS, one batch per table and family."""

    def body() -> int:
        target = parse_target(address)
        require_root()
        layers = engine.default_layers()
        plan = engine.plan(engine.find(target, layers), layers, broad=broad)
        return _execute(plan, target, dry_run=dry_run, json_output=json_output)

    _guarded(body)


@app.command()
def delete(
    chain: Annotated[str, typer.Argument(help="Chain name, e.g. f2b-sshd or INPUT.")],
    number: Annotated[int, typer.Argument(help="Rule number as `unban list` shows it.")],
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
    """Delete rule NUMBER of CHAIN, like `iptables -D CHAIN NUMBER`, but never a rule that slid
    into that number meanwhile."""

    def body() -> int:
        expected = parse_target(expect) if expect is not None else None
        family = "ipv6" if ipv6 else "ipv4"
        if expected is not None and family_of(expected) != family:
            raise InputError(f"--expect {expect} is not an {family} address (use -6 for IPv6)")
        require_root()
        xtables = XtablesLayer()
        finding = xtables.resolve(
            table,
            chain,
            number,
            backend=backend.value if backend else None,
            family=family,
            expect=expected,
        )
        plan = Plan(target=f"{chain} rule {number}", batches=(build_number_batch(finding),))
        return _execute(plan, expected, dry_run=dry_run, json_output=json_output, layers=[xtables])

    _guarded(body)


def _execute(
    plan: Plan,
    target: Optional[Network],
    *,
    dry_run: bool,
    json_output: bool,
    layers: Optional[list[Any]] = None,
) -> int:
    """Print the plan; unless dry-run, apply it and check the address is clear again."""
    layers = layers or engine.default_layers()
    if dry_run or plan.is_empty():
        _emit(
            json_output,
            {"dry_run": dry_run, "plan": plan},
            [*plan_text(plan), *(["dry run: nothing changed"] if dry_run and plan.steps else [])],
        )
        return ExitStatus.STILL_BLOCKED if plan.skipped else ExitStatus.OK
    if not json_output:
        for line in plan_text(plan):
            typer.echo(line)

    def done(batch: Batch) -> None:
        if not json_output:
            typer.echo(f"done: {batch.layer} {batch.scope} ({len(batch.steps)} change(s))")

    outcome = engine.apply(plan, layers, on_batch=done)
    remaining: Optional[Report] = None
    if target is not None:
        remaining = engine.find(target, engine.default_layers())
    _emit(
        json_output,
        {"dry_run": False, "plan": plan, "applied": outcome.applied, "remaining": remaining},
        _remaining_text(target, remaining),
    )
    return ExitStatus.STILL_BLOCKED if remaining and remaining.findings else ExitStatus.OK


def _remaining_text(target: Optional[Network], remaining: Optional[Report]) -> list[str]:
    if remaining is None:
        return []
    if not remaining.findings:
        return [f"{target} is no longer blocked by any packet filter"]
    return [f"still blocking {target}:", *report_text(remaining)[1:]]


def main() -> None:
    app()
