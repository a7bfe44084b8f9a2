"""The rescue commands, first in `unban --help`: me, undo, doctor, probe."""

import sys
from typing import Annotated, Optional

import typer

from unban.cli.base import (
    RESCUE,
    DryRunOption,
    JsonOption,
    app,
    changing,
    emit,
    guarded,
    helptext,
    progress,
    settings,
)
from unban.errors import ExitStatus, InputError
from unban.settings import Settings
from unban.system import require_root

ChangeIdArgument = Annotated[
    Optional[str],
    typer.Argument(
        metavar="ID", help="Change set, as `unban history` lists it (default: the last)."
    ),
]


@app.command(
    rich_help_panel=RESCUE,
    help=helptext(
        "Get ADDRESS back in: lift every block on it, then check again.",
        "In this order: unban it in every fail2ban jail, remove the packet-filter blocks on it,"
        " take it out of hosts.deny/hosts.allow, sshguard's blacklist and CrowdSec's decisions,"
        " exempt it from future bans (fail2ban's ignoreip, sshguard's and CrowdSec's whitelists;"
        " a running sshguard is restarted, CrowdSec reloaded). ADDRESS defaults"
        " to the client of the SSH session this runs in. Prints the plan, then applies it without"
        " asking (--dry-run only prints it), then says what still refuses ADDRESS, with the"
        " command that would clear it. `unban undo` puts the whole run back.",
        "Exit 0 when nothing refuses it any more, 3 when something still does, 1 when a step"
        " failed (everything already changed was put back).",
        examples=(
            "unban me                       # from the SSH session that still works",
            "unban me 203.0.113.4 --dry-run",
            "unban me 203.0.113.4 --broad --user alice",
        ),
    ),
)
def me(
    ctx: typer.Context,
    address: Annotated[
        Optional[str],
        typer.Argument(
            metavar="ADDRESS", help="Your IPv4/IPv6 address (default: this SSH session's client)."
        ),
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
    no_sshd: Annotated[
        bool,
        typer.Option(
            "--no-sshd", help="Leave sshd's PerSourcePenalties penalties (OpenSSH 9.8+) alone."
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
    def body() -> int:
        from unban import me as me_mod
        from unban.address import parse_target, show
        from unban.contract import commands as contract
        from unban.session import find_origin

        text = address
        source = ""
        if text is None:
            origin = find_origin()
            nobody = (
                "no SSH connection found above this process (no sshd running as root with a "
                "TCP connection, no login in utmp for this terminal)"
            )
            if origin is None and sys.stdin.isatty() and not json_output:
                typer.echo(nobody)
                text = typer.prompt("your address (IPv4 or IPv6)")
            elif origin is None:
                raise InputError(f"{nobody}: give your address, `unban me ADDRESS`")
            else:
                text, source = origin.address, origin.source
        target = parse_target(text)
        require_root()
        if source and not json_output:
            typer.echo(f"address {show(target)} (from {source})")
        after_plan = "asking sshd" if dry_run else "applying the plan, then checking again"

        with progress(json_output) as shown:

            def echo(line: str) -> None:
                if not json_output:
                    shown.echo(line, after_plan)

            shown.step(f"reading every layer for {show(target)}")
            with changing(settings(ctx), changes=not dry_run):
                from unban.readahead import start_reads

                start_reads(
                    target, sshd_config
                )  # after the lock and recovery: nothing changes before
                result = me_mod.run_me(
                    target,
                    broad=broad,
                    ignore=not no_ignore,
                    dry_run=dry_run,
                    user=user,
                    sshd_config=sshd_config,
                    groups=[g for g in me_mod.LAYER_GROUPS if g != "sshd"] if no_sshd else None,
                    on_event=echo,
                    confdir=settings(ctx).fail2ban_conf,
                    state_dir=settings(ctx).state_dir,
                )
        emit(json_output, contract.me(result, source), me_mod.text_lines(result))
        return result.status

    guarded(body, ctx)


def undo_body(
    change_id: Optional[str], dry_run: bool, json_output: bool, run: Settings, command: str
) -> int:
    """`unban undo` (and its alias `unban rollback`): the plan, then, unless dry-run, undo it."""
    from unban import history
    from unban.contract import commands as contract
    from unban.reverter import Reverter

    require_root()
    with changing(run, changes=not dry_run, recover=False):  # a run cut short is what undo takes
        plan = history.undo_plan(Reverter(run.state_dir), change_id)
        if dry_run:
            document = contract.undo(command, plan, dry_run=True)
            emit(json_output, document, plan.lines(done=False))
            return ExitStatus.OK
        with progress(json_output) as shown:
            shown.step(f"putting back change set {plan.change_set}")
            result = history.undo(plan, state_dir=run.state_dir, confdir=run.fail2ban_conf)
    document = contract.undo(command, plan, dry_run=False, result=result)
    emit(json_output, document, plan.lines(done=True))
    return ExitStatus.OK


@app.command(
    rich_help_panel=RESCUE,
    help=helptext(
        "Put back a change set (default: the last), from any command.",
        "Undoes `unban me`, heal runs, `remove`, `delete`, `ignore` and `unignore`: rules and set"
        " elements back, fail2ban bans and CrowdSec decisions again, ignoreip and whitelist"
        " entries taken out, files byte for byte."
        " Says what it puts back and what it cannot restore exactly (a ban's start time, rule"
        " counters). Refuses while a later change set changed the same files.",
        examples=("unban history", "unban undo --dry-run", "unban undo 12"),
    ),
)
def undo(
    ctx: typer.Context,
    change_id: ChangeIdArgument = None,
    *,
    dry_run: DryRunOption = False,
    json_output: JsonOption = False,
) -> None:
    guarded(lambda: undo_body(change_id, dry_run, json_output, settings(ctx), "undo"), ctx)


@app.command(
    rich_help_panel=RESCUE,
    help=helptext(
        "Why ADDRESS cannot get in, most likely cause first, with fixes.",
        "Checks fail2ban, the packet filters (the rule a SYN from ADDRESS meets first), routes,"
        " hosts.allow/hosts.deny, sshd's ListenAddress, MaxStartups, PerSourcePenalties and"
        " AllowUsers/DenyUsers, and the recent log lines about ADDRESS. Changes nothing.",
        "Exit 0 when nothing blocks ADDRESS, 3 when something does.",
        examples=("unban doctor 203.0.113.4", "unban doctor 203.0.113.4 --user alice --port 2222"),
    ),
)
def doctor(
    ctx: typer.Context,
    address: Annotated[
        str, typer.Argument(metavar="ADDRESS", help="The client's IPv4 or IPv6 address.")
    ],
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
    def body() -> int:
        from unban import doctor as doctor_mod
        from unban.address import parse_target
        from unban.contract import commands as contract
        from unban.path.model import BLOCKS

        parse_target(address)
        if port is not None and not 0 < port < 65536:
            raise InputError(f"--port {port} is not a TCP port")
        require_root()
        options = doctor_mod.Options(
            user=user,
            port=port,
            sshd_config=sshd_config,
            logs=tuple(log or ()),
            settings=settings(ctx),
        )
        with progress(json_output) as shown:
            shown.step("checking fail2ban, the packet filters, sshd and the logs")
            diagnosis = doctor_mod.diagnose(address, options)
        code = ExitStatus.STILL_BLOCKED if diagnosis.verdict == BLOCKS else ExitStatus.OK
        if json_output:
            emit(True, contract.doctor(diagnosis, code), [])
        else:
            from rich.console import Console

            Console(highlight=False).print(doctor_mod.render(diagnosis))
        return code

    guarded(body, ctx)


@app.command(
    rich_help_panel=RESCUE,
    help=helptext(
        "Client side: connect like ssh and say what the server does.",
        "Reports the server's version string, a reset during identification (the"
        " `kex_exchange_identification: read: Connection reset by peer` error), closed without a"
        " banner, refused (a REJECT rule), timed out (a DROP rule), with the likely causes.",
        "Exit 0 when every attempt got the server's version string, 3 otherwise.",
        examples=(
            "unban probe server.example.net",
            "unban probe 198.51.100.7 --port 2222 --count 5",
        ),
    ),
)
def probe(
    ctx: typer.Context,
    host: Annotated[str, typer.Argument(metavar="HOST", help="Server host name or address.")],
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
    def body() -> int:
        from unban import probe as probe_mod
        from unban.contract import commands as contract

        with progress(json_output) as shown:
            shown.step(f"connecting to {host} port {port}")
            try:
                host.encode("idna")
            except UnicodeError:
                raise InputError(f"'{host}' is not a host name or an address") from None
            report = probe_mod.probe(host, port, count=count, timeout=timeout)
        code = ExitStatus.OK if report.ok else ExitStatus.STILL_BLOCKED
        emit(json_output, contract.probe(report, code), probe_mod.text_lines(report))
        return code

    guarded(body, ctx)
