"""The command line. Thin: parse options, call the engine, print, map errors to exit codes."""

import json
import sys
from collections.abc import Iterable, Sequence
from dataclasses import replace
from enum import Enum
from typing import Any, Callable, Optional

import typer
from typing_extensions import Annotated

from unban import engine, fail2ban
from unban.address import Network, family_of, parse_target, show
from unban.errors import ExitStatus, InputError, UnbanError
from unban.exemptions import Exemption, ExemptionPlan
from unban.fail2ban import DEFAULT_CONFDIR
from unban.layers import ListQuery
from unban.layers.xtables import XtablesLayer, build_batches
from unban.model import Batch, Plan, Report, as_json
from unban.render import absent_lines, listing_text, plan_text, report_text
from unban.reverter import DEFAULT_STATE_DIR, Reverter
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
    fail2ban_conf = DEFAULT_CONFDIR
    state_dir = DEFAULT_STATE_DIR


JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON on stdout, nothing else.")]
DryRunOption = Annotated[
    bool, typer.Option("--dry-run", help="Print the plan and the commands; change nothing.")
]


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
    fail2ban_conf: Annotated[
        str, typer.Option("--fail2ban-conf", metavar="DIR", help="fail2ban's config dir.")
    ] = DEFAULT_CONFDIR,
    state_dir: Annotated[
        str,
        typer.Option("--state-dir", metavar="DIR", help="Where unban keeps backups (mode 0700)."),
    ] = DEFAULT_STATE_DIR,
) -> None:
    _Options.debug = debug
    _Options.fail2ban_conf = fail2ban_conf
    _Options.state_dir = state_dir
    fail2ban.configure(fail2ban.Settings(confdir=fail2ban_conf, state_dir=state_dir))


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
    """Everything that blocks ADDRESS: fail2ban bans, iptables/ip6tables rules (both backends),
    nft rules and sets, ipsets, blocking routes, xt_recent lists."""

    def body() -> int:
        target = parse_target(address)
        require_root()
        report = engine.find(target, engine.default_layers())
        report = replace(report, exemptions=tuple(_exemption_states(target)))
        _emit(json_output, report, report_text(report))
        return ExitStatus.STILL_BLOCKED if report.refused else ExitStatus.OK

    _guarded(body)


def _exemption_states(target: Network) -> list[Any]:
    """find's "exempt from future bans" answer for each ban source here."""
    from unban import exemptions

    return exemptions.states(exemptions.default_exemptions(_Options.fail2ban_conf), target)


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
        plan = Plan(
            target=f"{chain} rule {number}", batches=tuple(build_batches([finding], by_number=True))
        )
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
        remaining = _settled(target, outcome.applied, layers)
    _emit(
        json_output,
        {"dry_run": False, "plan": plan, "applied": outcome.applied, "remaining": remaining},
        _remaining_text(remaining),
    )
    return ExitStatus.STILL_BLOCKED if remaining and remaining.refused else ExitStatus.OK


def _settled(target: Network, applied: Sequence[Batch], layers: Sequence[Any]) -> Report:
    """find again, waiting (bounded) while a live owner's own lift (CrowdSec's bouncer) has not
    reached the kernel yet."""
    import time

    from unban.me import owner_leftovers, settle_time

    deadline = time.monotonic() + settle_time(applied, layers)
    while True:
        remaining = engine.find(target, engine.default_layers())
        if not owner_leftovers(remaining, applied, target) or time.monotonic() > deadline:
            return remaining
        time.sleep(0.25)


def _remaining_text(remaining: Optional[Report]) -> list[str]:
    if remaining is None:
        return []
    if not remaining.findings:
        return [f"{remaining.target} is no longer blocked by fail2ban or any packet filter"]
    return [f"still blocking {remaining.target}:", *report_text(remaining)[1:]]


def main() -> None:
    app()


# ---------------------------------------------------------------- fail2ban: ignoreip, rollback
# (issue 3) `unban ignore`, `unban unignore`, `unban rollback`. fail2ban's config dir and the
# state dir are the global --fail2ban-conf / --state-dir options, because `find` and `remove`
# read fail2ban (and back up its database) too.

JailOption = Annotated[
    Optional[list[str]],
    typer.Option("--jail", metavar="JAIL", help="Only this jail (repeat for more)."),
]
ForceOption = Annotated[
    bool, typer.Option("--force", help="Allow ranges wider than /16 (IPv4) or /48 (IPv6).")
]


OnlyOption = Annotated[
    Optional[list[str]],
    typer.Option(
        "--only",
        metavar="SOURCE",
        help="Only this ban source: fail2ban, sshguard or crowdsec (repeat for more).",
    ),
]


def _ignore_lines(plan: Any, result: Any, dry_run: bool, banned: Any) -> list[str]:
    """fail2ban's part of `unban ignore`/`unignore`, as it always read."""
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
) -> int:
    from unban import exemptions
    from unban.exemptions.crowdsec import CrowdsecExemption
    from unban.exemptions.fail2ban import Fail2banExemption, installed
    from unban.exemptions.sshguard import SshguardExemption
    from unban.fail2ban import ignoreip
    from unban.layers.fail2ban import Fail2banLayer

    target = ignoreip.parse_ignore_target(address, force=force)
    if operation == "ignore":
        ignoreip.check_range(target, force=force)
    require_root()
    confdir = _Options.fail2ban_conf
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
        change_set = _apply_exemptions(planned, chosen, Reverter(_Options.state_dir), target)
    fail2ban_plan = next((p.payload for p in planned if p.source == "fail2ban"), None)
    fail2ban_result = next(
        (e.results[-1] for e in chosen if isinstance(e, Fail2banExemption) and e.results), None
    )
    banned = []
    if operation == "ignore" and fail2ban_plan is not None:
        banned = [f for f in Fail2banLayer(confdir, _Options.state_dir).find(target) if f.targeted]
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
        lines.append(f"change set {change_set}: `unban rollback {change_set}` undoes it")
    _emit(
        as_json,
        {
            "dry_run": dry_run,
            "plan": fail2ban_plan,
            "diffs": {
                e.path: e.diff() for p in planned if p.source == "fail2ban" for e in p.payload.edits
            },
            "exemptions": planned,
            "change_set": change_set,
            "verified": fail2ban_result.verified if fail2ban_result else "",
            "still_banned": banned,
        },
        lines,
    )
    return ExitStatus.OK


def _apply_exemptions(
    planned: Sequence[ExemptionPlan],
    chosen: Sequence[Exemption],
    reverter: Reverter,
    target: Network,
) -> str:
    """Apply the plans in one change set; on a failure put everything back. Its id."""
    from unban.exemptions import EXEMPTION_KIND, ExemptionError
    from unban.exemptions.stage import ExemptionStage, batches
    from unban.fail2ban.ignoreip import IGNORE_KIND
    from unban.model import Plan

    operation = planned[0].operation
    change_set = reverter.begin(f"{operation} {show(target)} (exemptions)")
    stage = ExemptionStage(change_set, chosen)
    try:
        engine.apply(Plan(show(target), tuple(batches(planned))), [stage])
    except UnbanError as exc:
        skip = {IGNORE_KIND: lambda a: None, EXEMPTION_KIND: lambda a: None}
        try:
            reverter.rollback(change_set.id, handlers=skip)
        except UnbanError as again:
            raise ExemptionError(
                f"{exc}; putting things back failed too: {again}. Backups are in {change_set.path}"
            ) from exc
        raise ExemptionError(
            f"{exc}; change set {change_set.id} was rolled back, nothing changed"
        ) from exc
    change_set.finalize()
    return str(change_set.id)


@app.command()
def ignore(
    address: Annotated[str, typer.Argument(help="IPv4/IPv6 address or CIDR.")],
    *,
    jail: JailOption = None,
    only: OnlyOption = None,
    force: ForceOption = False,
    dry_run: DryRunOption = False,
    json_output: JsonOption = False,
) -> None:
    """Exempt ADDRESS from future bans in every ban source here: the effective ignoreip of
    every enabled fail2ban jail (or --jail J; jail.local or the .local file that defines it,
    never jail.conf; and live), a running sshguard's whitelist (then restarted), a running
    CrowdSec's allowlist or whitelist parser (then reloaded). --only picks sources."""
    _guarded(lambda: _ignore_command("ignore", address, jail, only, force, dry_run, json_output))


@app.command()
def unignore(
    address: Annotated[str, typer.Argument(help="IPv4/IPv6 address or CIDR.")],
    *,
    jail: JailOption = None,
    only: OnlyOption = None,
    force: ForceOption = False,
    dry_run: DryRunOption = False,
    json_output: JsonOption = False,
) -> None:
    """Take ADDRESS back out of those exemptions (fail2ban's ignoreip, config and live;
    sshguard's whitelist; CrowdSec's)."""
    _guarded(lambda: _ignore_command("unignore", address, jail, only, force, dry_run, json_output))


@app.command()
def rollback(
    change_id: Annotated[
        Optional[str], typer.Argument(metavar="[ID]", help="Change set (default: the last one).")
    ] = None,
    *,
    list_: Annotated[bool, typer.Option("--list", help="List the change sets.")] = False,
    json_output: JsonOption = False,
) -> None:
    """Restore the files of a change set byte for byte and undo its live changes."""

    def body() -> int:
        from unban.exemptions import EXEMPTION_KIND, default_exemptions
        from unban.exemptions.stage import handler
        from unban.fail2ban.config import server_paths
        from unban.fail2ban.ignoreip import IGNORE_KIND, rollback_check, undo_live
        from unban.reverter import Reverter, describe

        require_root()
        reverter = Reverter(_Options.state_dir)
        if list_:
            infos = reverter.list()
            _emit(json_output, {"change_sets": [i.to_json() for i in infos]}, describe(infos))
            return ExitStatus.OK
        from unban.me import ME_BATCH, undo_action

        confdir = _Options.fail2ban_conf
        info = reverter.rollback(
            change_id,
            handlers={
                IGNORE_KIND: undo_live,
                ME_BATCH: undo_action,
                EXEMPTION_KIND: handler(default_exemptions(confdir)),
            },
            check=rollback_check(lambda: server_paths(confdir).socket),
        )
        lines = [f"rolled back change set {info.id} ({info.description}):"]
        lines += [
            f"  {'restored' if r.existed else 'removed'} {r.path}" for r in reversed(info.files)
        ]
        lines += [f"  undid {a.get('summary') or a.get('kind')}" for a in reversed(info.actions)]
        _emit(json_output, {"rolled_back": info.to_json()}, lines)
        return ExitStatus.OK

    _guarded(body)


# ---------------------------------------------------------------- diagnosis: doctor, probe
# (issue 5) `unban doctor ADDRESS` on the server, `unban probe HOST` on the client. Both exit 0
# when nothing refuses the client, 3 when something does (doctor: a check says "blocks"; probe:
# an attempt got no version string).


@app.command()
def doctor(
    address: Annotated[str, typer.Argument(help="The client's IPv4 or IPv6 address.")],
    *,
    user: Annotated[
        Optional[str], typer.Option("--user", help="Login name to check AllowUsers/DenyUsers for.")
    ] = None,
    port: Annotated[
        Optional[int], typer.Option("--port", help="sshd's port (default: its first Port).")
    ] = None,
    sshd_config: Annotated[
        Optional[str], typer.Option("--sshd-config", metavar="FILE", help="sshd -f FILE.")
    ] = None,
    log: Annotated[
        Optional[list[str]],
        typer.Option(
            "--log", metavar="FILE", help="Read this log instead of the journal (repeatable)."
        ),
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Why ADDRESS cannot get in: fail2ban, packet filters (the rule a SYN meets first), routes,
    hosts.allow/hosts.deny, sshd's Listen/MaxStartups/PerSourcePenalties/AllowUsers, the logs.
    Most likely cause first; each with its evidence and the command that fixes it. Exit 0 when
    nothing blocks ADDRESS, 3 when something does."""

    def body() -> int:
        from unban import doctor as doctor_mod

        parse_target(address)
        if port is not None and not 0 < port < 65536:
            raise InputError(f"--port {port} is not a TCP port")
        require_root()
        options = doctor_mod.Options(
            user=user, port=port, sshd_config=sshd_config, logs=tuple(log or ())
        )
        diagnosis = doctor_mod.diagnose(address, options)
        if json_output:
            _emit(True, {"verdict": diagnosis.verdict, "diagnosis": diagnosis}, [])
        else:
            from rich.console import Console

            Console(highlight=False).print(doctor_mod.render(diagnosis))
        return ExitStatus.STILL_BLOCKED if diagnosis.verdict == doctor_mod.BLOCKS else ExitStatus.OK

    _guarded(body)


@app.command()
def probe(
    host: Annotated[str, typer.Argument(help="Server host name or address.")],
    *,
    port: Annotated[int, typer.Option("--port", help="TCP port.")] = 22,
    count: Annotated[
        int, typer.Option("--count", help="Attempts per address (MaxStartups drops at random).")
    ] = 1,
    timeout: Annotated[
        float, typer.Option("--timeout", help="Seconds to wait for the connection and the banner.")
    ] = 10.0,
    json_output: JsonOption = False,
) -> None:
    """Connect to HOST like ssh does and say what happens: the server's version string, reset
    during identification, closed, refused, timed out, unreachable. No root needed. Exit 0 when
    every attempt got the server's version string, 3 otherwise."""

    def body() -> int:
        from unban import probe as probe_mod

        report = probe_mod.probe(host, port, count=count, timeout=timeout)
        _emit(json_output, {"ok": report.ok, "probe": report}, probe_mod.text_lines(report))
        return ExitStatus.OK if report.ok else ExitStatus.STILL_BLOCKED

    _guarded(body)


# ---------------------------------------------------------------- self-healing: heal
# (issue 4) `unban heal` from cron or a systemd timer, `--install cron|systemd`, `--uninstall`.
# The hidden --lock-file, --cron-dir and --systemd-dir let tests keep off /run and /etc.

from unban import heal as heal_mod  # noqa: E402


class ScheduleKind(str, Enum):
    cron = "cron"
    systemd = "systemd"


def _global_args() -> list[str]:
    """The global options a scheduled `unban heal` must repeat (only those not at default)."""
    args = []
    if _Options.fail2ban_conf != DEFAULT_CONFDIR:
        args += ["--fail2ban-conf", _Options.fail2ban_conf]
    if _Options.state_dir != DEFAULT_STATE_DIR:
        args += ["--state-dir", _Options.state_dir]
    return args


@app.command()
def heal(
    *,
    config: Annotated[
        str, typer.Option("--config", metavar="FILE", help="The protected addresses.")
    ] = heal_mod.DEFAULT_CONFIG,
    install: Annotated[
        Optional[ScheduleKind],
        typer.Option(
            "--install", help="Run heal from cron (/etc/cron.d/unban) or a systemd timer."
        ),
    ] = None,
    every: Annotated[
        Optional[str],
        typer.Option(
            "--every", metavar="INTERVAL", help="With --install: how often, 1m to 24h (default 5m)."
        ),
    ] = None,
    uninstall: Annotated[
        bool, typer.Option("--uninstall", help="Remove what --install wrote.")
    ] = False,
    json_output: JsonOption = False,
    lock_file: Annotated[str, typer.Option("--lock-file", hidden=True)] = heal_mod.DEFAULT_LOCK,
    cron_dir: Annotated[str, typer.Option("--cron-dir", hidden=True)] = heal_mod.CRON_DIR,
    systemd_dir: Annotated[str, typer.Option("--systemd-dir", hidden=True)] = heal_mod.SYSTEMD_DIR,
) -> None:
    """For each address, network and host name in FILE (/etc/unban/unban.toml; names resolved
    at each run), what `unban me` does, limited to the config's layers and ignoreip setting.
    Prints nothing when nothing was blocked, one line per healed address otherwise; logs every
    run to syslog (ident unban). Exit status: the gravest of the addresses' (0 all clear or
    healed, 3 something still refuses one, 1 a step failed and was put back, 5 putting back
    failed too); 0 when another heal holds the lock for 5 s (logged); 2 for a broken config
    (nothing changed). --install cron|systemd writes /etc/cron.d/unban or unban-heal.service and
    unban-heal.timer (--every 1m to 24h; cron only takes intervals it can keep evenly);
    --uninstall removes them. FILE is TOML, owned by root and writable by nobody else (nor
    any directory above it): protect = ["203.0.113.4", "2001:db8::/64", "home.example.net"];
    wide_ok = ["10.0.0.0/8"] (entries wider than /16 or /48, meant); layers = ["firewall",
    "fail2ban", "hosts"]; ignoreip = true."""

    def body() -> int:
        import dataclasses
        from pathlib import Path

        if install is not None and uninstall:
            raise InputError("--install and --uninstall: give one of them")
        if every is not None and install is None:
            raise InputError("--every goes with --install")
        require_root()
        if install is None and not uninstall:
            report = heal_mod.run(Path(config), log=heal_mod.syslog_log, lock_path=lock_file)
            if json_output:
                _emit(True, heal_mod.as_json(report), [])
            else:
                for line in heal_mod.output_lines(report):
                    typer.echo(line)
                for line in heal_mod.error_lines(report):
                    typer.echo(line, err=True)
            return report.exit_status
        places = heal_mod.Places(cron_dir, systemd_dir)
        places = dataclasses.replace(places, systemctl=heal_mod.host_systemctl(places))
        if uninstall:
            removed = heal_mod.uninstall(places)
            _emit(json_output, removed, removed.lines())
            return ExitStatus.OK
        assert install is not None
        done = heal_mod.schedule(install.value, every, config, places, global_args=_global_args())
        _emit(json_output, done, done.lines())
        return ExitStatus.OK

    _guarded(body)


# ---------------------------------------------------------------- unban me, unban undo
# (issue 4) `unban me [ADDRESS]`: every layer in one undoable transaction, checked again;
# `unban undo [ID]` puts an `unban me` run back. The work is in unban/me.py (heal calls it too).


@app.command()
def me(
    address: Annotated[
        Optional[str],
        typer.Argument(help="Your IPv4/IPv6 address (default: this SSH session's client)."),
    ] = None,
    *,
    broad: Annotated[
        bool,
        typer.Option(
            "--broad",
            help="Also lift blocks on wider networks holding ADDRESS (hosts files: grant "
            "ADDRESS in hosts.allow instead of deleting a pattern that covers others).",
        ),
    ] = False,
    dry_run: DryRunOption = False,
    json_output: JsonOption = False,
    no_ignore: Annotated[
        bool,
        typer.Option(
            "--no-ignore",
            help="Do not exempt ADDRESS from future bans (fail2ban's ignoreip, sshguard's and "
            "CrowdSec's whitelists).",
        ),
    ] = False,
    user: Annotated[
        Optional[str],
        typer.Option("--user", help="Your login name, to check sshd's AllowUsers/DenyUsers."),
    ] = None,
    sshd_config: Annotated[
        Optional[str], typer.Option("--sshd-config", metavar="FILE", help="sshd -f FILE.")
    ] = None,
) -> None:
    """Get ADDRESS back in: unban it in every fail2ban jail, remove the packet-filter blocks on
    it, take it out of hosts.deny/hosts.allow, sshguard's blacklist and CrowdSec's decisions,
    exempt it from future bans (fail2ban's ignoreip, sshguard's and CrowdSec's whitelists; a
    running sshguard is restarted, CrowdSec reloaded); in one change set
    that `unban undo` puts back. Prints the plan, then applies it without asking (--dry-run only
    prints); then checks again and says what still refuses ADDRESS, with the command that would
    clear it. Exit 0 when nothing refuses it any more, 3 when something still does, 1 when a
    step failed (everything already changed was put back)."""

    def body() -> int:
        from unban import me as me_mod
        from unban.session import find_origin

        text = address
        source = ""
        if text is None:
            origin = find_origin()
            if origin is None and sys.stdin.isatty() and not json_output:
                typer.echo("no SSH session found here (no SSH_CONNECTION, no remote login in utmp)")
                text = typer.prompt("your address (IPv4 or IPv6)")
            elif origin is None:
                raise InputError(
                    "no SSH session found here (no SSH_CONNECTION, no remote login in utmp): "
                    "give your address, `unban me ADDRESS`"
                )
            else:
                text, source = origin.address, origin.source
        target = parse_target(text)
        require_root()
        if source and not json_output:
            typer.echo(f"address {show(target)} (from {source})")
        echo: Callable[[str], None] = (lambda line: None) if json_output else typer.echo
        result = me_mod.run_me(
            target,
            broad=broad,
            ignore=not no_ignore,
            dry_run=dry_run,
            user=user,
            sshd_config=sshd_config,
            on_event=echo,
            confdir=_Options.fail2ban_conf,
            state_dir=_Options.state_dir,
        )
        data = {
            **as_json(result),
            "source": source or None,
            "status": int(result.status),
            "blocked": result.blocked,
            "changed": result.changed,
            "summary": result.summary,
        }
        _emit(json_output, data, me_mod.text_lines(result))
        return result.status

    _guarded(body)


@app.command()
def undo(
    change_id: Annotated[
        Optional[str],
        typer.Argument(metavar="[ID]", help="The `unban me` run (default: the last one)."),
    ] = None,
    *,
    json_output: JsonOption = False,
) -> None:
    """Put back what an `unban me` run changed: rules and set elements back, fail2ban bans
    again, ignoreip entries taken out, files byte for byte; says what it cannot restore."""

    def body() -> int:
        from unban import me as me_mod

        require_root()
        result = me_mod.undo(
            change_id, state_dir=_Options.state_dir, confdir=_Options.fail2ban_conf
        )
        _emit(json_output, {"undone": result}, me_mod.undo_lines(result))
        return ExitStatus.OK

    _guarded(body)
