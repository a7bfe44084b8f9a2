"""The self-healing guard: heal (run from cron or a systemd timer), --install, --uninstall.
The hidden --lock-file, --cron-dir and --systemd-dir let tests keep off /run and /etc."""

import dataclasses
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from unban import heal as heal_mod
from unban import healschedule as schedule
from unban.cli.base import (
    GUARD,
    DryRunOption,
    JsonOption,
    app,
    emit,
    guarded,
    helptext,
    progress,
    settings,
)
from unban.contract import commands as contract
from unban.errors import ExitStatus, InputError, printable
from unban.fail2ban import DEFAULT_CONFDIR
from unban.reverter import DEFAULT_STATE_DIR
from unban.settings import Settings
from unban.system import require_root


class ScheduleKind(str, Enum):
    cron = "cron"
    systemd = "systemd"


def _global_args(run: Settings) -> list[str]:
    """The global options a scheduled `unban heal` must repeat (only those not at default)."""
    args = []
    if run.fail2ban_conf != DEFAULT_CONFDIR:
        args += ["--fail2ban-conf", run.fail2ban_conf]
    if run.state_dir != DEFAULT_STATE_DIR:
        args += ["--state-dir", run.state_dir]
    return args


@app.command(
    rich_help_panel=GUARD,
    help=helptext(
        "Keep the addresses in unban.toml unblocked (run from cron).",
        "The config is /etc/unban/unban.toml (or --config FILE).",
        "For each address, network and host name in the config (names resolved at each run),"
        " what `unban me` does, limited to the config's layers and ignoreip setting. Prints"
        " nothing when nothing was blocked (cron mails any output), one line per healed address"
        " otherwise; logs every run to syslog (ident unban). Each run is a change set in"
        " `unban history`.",
        "Exit status: the gravest of the addresses' (0 all clear or healed, 3 something still"
        " refuses one, 1 a step failed and was put back, 5 putting back failed too); 0 when"
        " another heal holds the lock for 5 s; 2 for a broken config.",
        "--install cron|systemd writes /etc/cron.d/unban, or unban-heal.service and"
        " unban-heal.timer (--every 1m to 24h); --uninstall removes them.",
        'The config is TOML, owned by root and writable by nobody else: protect = ["203.0.113.4",'
        ' "2001:db8::/64", "home.example.net"]; wide_ok = ["10.0.0.0/8"] (entries wider than'
        ' /16 or /48, meant); layers = ["firewall", "fail2ban", "hosts", "owners", "sshd"];'
        " ignoreip = true.",
        examples=(
            "unban heal --dry-run",
            "unban heal --install systemd --every 5m --dry-run",
            "unban heal --uninstall",
        ),
    ),
)
def heal(
    ctx: typer.Context,
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
    dry_run: DryRunOption = False,
    json_output: JsonOption = False,
    lock_file: Annotated[str, typer.Option("--lock-file", hidden=True)] = heal_mod.DEFAULT_LOCK,
    cron_dir: Annotated[str, typer.Option("--cron-dir", hidden=True)] = schedule.CRON_DIR,
    systemd_dir: Annotated[str, typer.Option("--systemd-dir", hidden=True)] = schedule.SYSTEMD_DIR,
) -> None:
    def body() -> int:
        if install is not None and uninstall:
            raise InputError("--install and --uninstall: give one of them")
        if every is not None and install is None:
            raise InputError("--every goes with --install")
        require_root()
        if install is None and not uninstall:
            return _run(
                Path(config), lock_file, settings(ctx), dry_run=dry_run, json_output=json_output
            )
        places = schedule.Places(cron_dir, systemd_dir)
        places = dataclasses.replace(places, systemctl=schedule.host_systemctl(places))
        if uninstall:
            removal = schedule.plan_uninstall(places)
            if dry_run:
                document = contract.schedule(
                    "uninstall",
                    dry_run=True,
                    files=removal.present,
                    commands=[f"systemctl disable --now {schedule.TIMER}"]
                    if removal.units_present
                    else [],
                )
                emit(json_output, document, removal.lines())
                return ExitStatus.OK
            removed = schedule.apply_uninstall(removal, places)
            document = contract.schedule(
                "uninstall",
                dry_run=False,
                files=removed.removed,
                commands=removed.ran,
                todo=removed.todo,
            )
            emit(json_output, document, removed.lines())
            return ExitStatus.OK
        kind = install.value if install is not None else ""
        plan = schedule.plan_schedule(
            kind, every, config, places, global_args=_global_args(settings(ctx))
        )
        if dry_run:
            document = contract.schedule(
                "install",
                dry_run=True,
                files=[path for path, _text in plan.writes],
                commands=plan.systemctl,
                how=plan,
            )
            emit(json_output, document, plan.lines())
            return ExitStatus.OK
        done = schedule.apply_install(plan, places)
        document = contract.schedule(
            "install",
            dry_run=False,
            files=done.written,
            commands=done.ran,
            todo=done.todo,
            how=done,
        )
        emit(json_output, document, done.lines())
        return ExitStatus.OK

    guarded(body, ctx)


def _run(config: Path, lock_file: str, run: Settings, *, dry_run: bool, json_output: bool) -> int:
    with progress(json_output) as shown:
        shown.step("healing the protected addresses")
        report = heal_mod.run(
            config,
            log=heal_mod.syslog_log,
            lock_path=lock_file,
            dry_run=dry_run,
            state_dir=run.state_dir,
            confdir=run.fail2ban_conf,
        )
    if json_output:
        emit(True, contract.heal(report), [])
    else:
        for line in heal_mod.output_lines(report):
            typer.echo(line)
        for line in heal_mod.error_lines(report):
            typer.echo(printable(line), err=True)
    return report.exit_status
