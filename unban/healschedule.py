"""`unban heal --install cron|systemd` and `--uninstall`: the schedule that runs `unban heal`.

`--install` writes /etc/cron.d/unban, or unban-heal.service and unban-heal.timer in
/etc/systemd/system; `--uninstall` removes them. Each is a plan first (`plan_install`,
`plan_uninstall`: what `--dry-run` prints), then applied. The same files are in scripts/ for the
default interval (a unit test keeps them equal to `render_*`).
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from unban import defaults, healconfig
from unban.errors import InputError, UnbanError
from unban.reverter import atomic_write

DEFAULT_EVERY = "5m"
CRON_DIR = defaults.CRON_DIR
SYSTEMD_DIR = defaults.SYSTEMD_DIR
CRON_FILE = "unban"
SERVICE = "unban-heal.service"
TIMER = "unban-heal.timer"
INSTALLED_PROGRAM = "/usr/local/sbin/unban"  # where scripts/install.sh links it
MARK = "# Written by `unban heal --install"
SYSTEMD_RUNNING = "/run/systemd/system"  # sd_booted(): systemd is PID 1


# ---------------------------------------------------------------- the interval (pure)

_UNIT_MINUTES = {"m": 1, "min": 1, "h": 60}
_INTERVAL = re.compile(r"(\d+)(min|m|h)")
MIN_MINUTES, MAX_MINUTES = 1, 24 * 60


@dataclass(frozen=True)
class Interval:
    """How often heal runs, in whole minutes (1m to 24h)."""

    minutes: int

    def text(self) -> str:
        """`5m`, `1h`, `1h30m`: what --every accepts."""
        hours, minutes = divmod(self.minutes, 60)
        return (f"{hours}h" if hours else "") + (f"{minutes}m" if minutes or not hours else "")

    def systemd(self) -> str:
        """A systemd time span: `5min`, `1h`, `1h 30min`."""
        hours, minutes = divmod(self.minutes, 60)
        parts = ([f"{hours}h"] if hours else []) + ([f"{minutes}min"] if minutes else [])
        return " ".join(parts)

    def cron(self) -> str:
        """The five cron time fields, or InputError when cron cannot keep equal gaps."""
        minutes = self.minutes
        if minutes < 60 and 60 % minutes == 0:
            return "* * * * *" if minutes == 1 else f"*/{minutes} * * * *"
        hours, rest = divmod(minutes, 60)
        if rest == 0 and 24 % hours == 0:
            if hours == 1:
                return "0 * * * *"
            return "0 0 * * *" if hours == 24 else f"0 */{hours} * * *"
        lower, higher = nearest_cron(minutes)
        if minutes < 60:
            why = f"*/{minutes} starts again at every full hour, so one gap would be shorter"
        elif rest == 0:
            why = f"*/{hours} in the hour field starts again at midnight"
        else:
            why = "cron cannot count minutes across hours"
        raise InputError(
            f"--every {self.text()}: cron cannot run every {self.text()} at equal gaps ({why}); "
            f"use --every {Interval(lower).text()} or {Interval(higher).text()}, or "
            "--install systemd, whose timer takes any interval"
        )


def cron_minutes() -> list[int]:
    """Every interval (in minutes) cron runs at equal gaps: divisors of an hour or a day."""
    return [m for m in range(1, 60) if 60 % m == 0] + [h * 60 for h in range(1, 25) if 24 % h == 0]


def nearest_cron(minutes: int) -> tuple[int, int]:
    """The closest intervals cron can keep below and above `minutes`."""
    choices = cron_minutes()
    lower = max((m for m in choices if m < minutes), default=choices[0])
    higher = min((m for m in choices if m > minutes), default=choices[-1])
    return lower, higher


def parse_interval(text: str) -> Interval:
    """`5m`, `90m`, `1h`, `1h30m`, `2h` (also `min`); between 1m and 24h."""
    raw = text.strip().lower().replace(" ", "")
    if not raw or _INTERVAL.sub("", raw) != "":
        raise InputError(
            f"--every {text!r}: give minutes or hours such as 5m, 90m, 1h or 1h30m (1m to 24h)"
        )
    minutes = sum(int(n) * _UNIT_MINUTES[unit] for n, unit in _INTERVAL.findall(raw))
    if minutes < MIN_MINUTES:
        raise InputError(f"--every {text}: at least 1m")
    if minutes > MAX_MINUTES:
        raise InputError(f"--every {text}: at most 24h; a ban usually lasts less than that")
    return Interval(minutes)


# ---------------------------------------------------------------- the files (pure)

_SAFE_ARG = re.compile(r"[A-Za-z0-9_@+=:,./-]+")


def heal_command(
    program: str, config: Optional[str] = None, global_args: Sequence[str] = ()
) -> list[str]:
    """argv of the scheduled run: `PROGRAM [GLOBAL OPTIONS] heal [--config FILE]`."""
    argv = [program, *global_args, "heal"]
    if config is not None and config != str(healconfig.DEFAULT_PATH):
        argv += ["--config", config]
    for arg in argv:
        if not _SAFE_ARG.fullmatch(arg):
            raise InputError(
                f"{arg!r}: cron and systemd would each read this argument their own way "
                "(spaces, quotes, %, $); use a path made of letters, digits and ./_-+@:,="
            )
    return argv


def _header(kind: str) -> list[str]:
    return [
        f"{MARK} {kind}`; `unban heal --uninstall` removes it.",
        "# Lifts every block on the addresses in /etc/unban/unban.toml (or --config); prints",
        "# nothing when nothing was blocked, and logs each run to syslog (ident unban).",
    ]


def render_cron(interval: Interval, command: Sequence[str]) -> str:
    lines = [
        *_header("cron"),
        "SHELL=/bin/sh",
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        f"{interval.cron()} root {' '.join(command)}",
    ]
    return "\n".join(lines) + "\n"


def render_service(command: Sequence[str]) -> str:
    lines = [
        *_header("systemd"),
        "[Unit]",
        "Description=unban heal: lift blocks on the protected addresses",
        "After=network.target fail2ban.service",
        "",
        "[Service]",
        "Type=oneshot",
        f"ExecStart={' '.join(command)}",
    ]
    return "\n".join(lines) + "\n"


def render_timer(interval: Interval) -> str:
    span = interval.systemd()
    lines = [
        *_header("systemd"),
        "[Unit]",
        f"Description=Run unban heal every {span}",
        "",
        "[Timer]",
        f"OnBootSec={span}",
        f"OnUnitActiveSec={span}",
        "",
        "[Install]",
        "WantedBy=timers.target",
    ]
    return "\n".join(lines) + "\n"


def installed_program(argv0: Optional[str] = None) -> str:
    """The absolute path of the `unban` to schedule: the one running, else the installed one."""
    argv0 = sys.argv[0] if argv0 is None else argv0
    candidates = [argv0] if os.path.basename(argv0) == "unban" else []
    candidates += [INSTALLED_PROGRAM, shutil.which("unban") or ""]
    for candidate in candidates:
        if candidate and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return os.path.abspath(candidate)
    raise InputError(
        "cannot find the installed `unban` for cron or systemd to run; "
        f"scripts/install.sh links it as {INSTALLED_PROGRAM}"
    )


# ---------------------------------------------------------------- install / uninstall

KINDS = ("cron", "systemd")
Systemctl = Callable[[Sequence[str]], None]


@dataclass(frozen=True)
class Places:
    """Where the schedule files go; tests point these at temp dirs.

    `systemctl` runs `systemctl ARGS` after writing or before removing the units; None means
    systemd is not managing this host (or the units go elsewhere): the commands are printed.
    """

    cron_dir: str = CRON_DIR
    systemd_dir: str = SYSTEMD_DIR
    systemctl: Optional[Systemctl] = None

    def cron_file(self) -> Path:
        return Path(self.cron_dir) / CRON_FILE

    def units(self) -> tuple[Path, Path]:
        return Path(self.systemd_dir) / SERVICE, Path(self.systemd_dir) / TIMER

    def files(self, kind: str) -> tuple[Path, ...]:
        return (self.cron_file(),) if kind == "cron" else self.units()


@dataclass(frozen=True)
class InstallResult:
    kind: str
    every: str
    schedule: str  # the cron fields or the systemd time span
    command: tuple[str, ...]
    written: tuple[str, ...]
    unchanged: tuple[str, ...]
    ran: tuple[str, ...]  # systemctl commands run
    todo: tuple[str, ...]  # commands the person still has to run

    def lines(self) -> list[str]:
        out = [f"wrote {path}" for path in self.written]
        out += [f"unchanged {path}" for path in self.unchanged]
        out += [f"$ {command}" for command in self.ran]
        how = "cron" if self.kind == "cron" else "the timer"
        out.append(f"{how} runs `{' '.join(self.command)}` every {self.every} ({self.schedule})")
        if self.todo:
            out.append("systemd does not manage this host (or the units went elsewhere); run:")
            out += [f"  {command}" for command in self.todo]
        out.append("`unban heal --uninstall` removes it")
        return out


@dataclass(frozen=True)
class UninstallResult:
    removed: tuple[str, ...]
    ran: tuple[str, ...]
    todo: tuple[str, ...]
    looked_at: tuple[str, ...]

    def lines(self) -> list[str]:
        if not self.removed:
            return [f"nothing to remove: no {', '.join(self.looked_at)}"]
        out = [f"$ {command}" for command in self.ran[:1] if "disable" in command]
        out += [f"removed {path}" for path in self.removed]
        out += [f"$ {command}" for command in self.ran if "disable" not in command]
        if self.todo:
            out.append("if systemd still runs the timer (it does not manage this host here), run:")
            out += [f"  {command}" for command in self.todo]
        return out


def _ours(path: Path) -> bool:
    """True when `path` is missing or was written by --install (it carries MARK)."""
    try:
        return MARK in path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return True


def _refuse_foreign(paths: Sequence[Path]) -> None:
    for path in paths:
        if not _ours(path):
            raise InputError(
                f"{path} was not written by `unban heal --install`; unban leaves it alone "
                "(move it away first if it should be replaced)"
            )


@dataclass(frozen=True)
class InstallPlan:
    """What `--install` writes and runs; `--dry-run` prints it, `apply_install` does it."""

    kind: str
    every: str
    schedule: str  # the cron fields or the systemd time span
    command: tuple[str, ...]
    writes: tuple[tuple[str, str], ...]  # (path, text) of the files that change
    unchanged: tuple[str, ...]
    systemctl: tuple[str, ...]  # systemctl commands to run after writing

    def lines(self) -> list[str]:
        out = []
        for path, text in self.writes:
            out.append(f"write {path} (root, 0644):")
            out += [f"    {line}" for line in text.splitlines()]
        out += [f"unchanged {path}" for path in self.unchanged]
        out += [f"$ {command}" for command in self.systemctl]
        how = "cron" if self.kind == "cron" else "the timer"
        out.append(f"{how} would run `{' '.join(self.command)}` every {self.every}")
        out.append("dry run: nothing changed")
        return out


def plan_install(
    kind: str, interval: Interval, command: Sequence[str], places: Places
) -> InstallPlan:
    """The files to write and the commands to run; refuses (InputError) what must not be done."""
    if kind not in KINDS:
        raise InputError(f"--install {kind}: use cron or systemd")
    other = "systemd" if kind == "cron" else "cron"
    present = [str(p) for p in places.files(other) if p.exists()]
    if present:
        raise InputError(
            f"unban heal is already installed for {other} ({', '.join(present)}); two schedules "
            "would run it twice: `unban heal --uninstall` first"
        )
    if kind == "cron":
        texts = {places.cron_file(): render_cron(interval, command)}
        schedule = interval.cron()
    else:
        service, timer = places.units()
        texts = {service: render_service(command), timer: render_timer(interval)}
        schedule = f"OnBootSec/OnUnitActiveSec={interval.systemd()}"
    for path in texts:
        if not path.parent.is_dir():
            tool = "cron" if kind == "cron" else "systemd"
            raise InputError(f"{path.parent} does not exist: is {tool} installed here?")
    _refuse_foreign(list(texts))
    writes, unchanged = [], []
    for path, text in texts.items():
        try:
            same = path.read_text(encoding="utf-8") == text
        except FileNotFoundError:
            same = False
        if same:
            unchanged.append(str(path))
        else:
            writes.append((str(path), text))
    commands = ["systemctl daemon-reload", f"systemctl enable --now {TIMER}"]
    return InstallPlan(
        kind=kind,
        every=interval.text(),
        schedule=schedule,
        command=tuple(command),
        writes=tuple(writes),
        unchanged=tuple(unchanged),
        systemctl=tuple(commands) if kind == "systemd" else (),
    )


def apply_install(plan: InstallPlan, places: Places) -> InstallResult:
    """Write the plan's files (root-owned, 0644, atomically) and run its systemctl commands
    (or say them, when systemd does not manage this host)."""
    for path, text in plan.writes:
        atomic_write(path, text.encode("utf-8"), mode=0o644, uid=0, gid=0)
    ran: list[str] = []
    todo: list[str] = []
    if places.systemctl is None:
        todo = list(plan.systemctl)
    else:
        for command_text in plan.systemctl:
            places.systemctl(command_text.split()[1:])
            ran.append(command_text)
    return InstallResult(
        kind=plan.kind,
        every=plan.every,
        schedule=plan.schedule,
        command=plan.command,
        written=tuple(path for path, _ in plan.writes),
        unchanged=plan.unchanged,
        ran=tuple(ran),
        todo=tuple(todo),
    )


def install(kind: str, interval: Interval, command: Sequence[str], places: Places) -> InstallResult:
    """Write the schedule files (root-owned, 0644, atomically). Nothing else is changed."""
    return apply_install(plan_install(kind, interval, command, places), places)


def plan_schedule(
    kind: str,
    every: Optional[str],
    config: str,
    places: Places,
    *,
    global_args: Sequence[str] = (),
    program: Optional[str] = None,
) -> InstallPlan:
    """`--install KIND --every EVERY`: check the interval and the config, then plan the files.

    The config must load now: a schedule that fails at every run helps nobody.
    """
    interval = parse_interval(every or DEFAULT_EVERY)
    if kind == "cron":
        interval.cron()  # refuse an interval cron cannot keep before anything else
    config_path = os.path.abspath(config)
    healconfig.load(Path(config_path))
    command = heal_command(program or installed_program(), config_path, global_args)
    return plan_install(kind, interval, command, places)


def schedule(
    kind: str,
    every: Optional[str],
    config: str,
    places: Places,
    *,
    global_args: Sequence[str] = (),
    program: Optional[str] = None,
) -> InstallResult:
    """`plan_schedule`, then write the files."""
    plan = plan_schedule(kind, every, config, places, global_args=global_args, program=program)
    return apply_install(plan, places)


@dataclass(frozen=True)
class UninstallPlan:
    """What `--uninstall` removes; `--dry-run` prints it, `apply_uninstall` does it."""

    present: tuple[str, ...]  # our files that exist, in removal order
    looked_at: tuple[str, ...]
    units_present: bool

    def lines(self) -> list[str]:
        if not self.present:
            return [f"nothing to remove: no {', '.join(self.looked_at)}"]
        out = [f"$ systemctl disable --now {TIMER}"] if self.units_present else []
        out += [f"remove {path}" for path in self.present]
        out += ["$ systemctl daemon-reload"] if self.units_present else []
        out.append("dry run: nothing changed")
        return out


def plan_uninstall(places: Places) -> UninstallPlan:
    every = [places.cron_file(), *places.units()]
    present = [p for p in every if p.exists()]
    _refuse_foreign(present)
    units_present = any(p in present for p in places.units())
    return UninstallPlan(
        tuple(str(p) for p in present), tuple(str(p) for p in every), units_present
    )


def apply_uninstall(plan: UninstallPlan, places: Places) -> UninstallResult:
    """Remove the cron file and the units --install wrote (the timer disabled first).

    Without systemctl (systemd not running, or the units elsewhere) the timer's
    timers.target.wants link, if `systemctl enable` made one, goes too.
    """
    ran: list[str] = []
    todo: list[str] = []
    removed = []
    if plan.units_present and places.systemctl is not None:
        try:
            places.systemctl(["disable", "--now", TIMER])
            ran.append(f"systemctl disable --now {TIMER}")
        except UnbanError:
            pass  # not loaded: nothing to stop
    if plan.units_present and places.systemctl is None:
        wants = Path(places.systemd_dir) / "timers.target.wants" / TIMER
        if wants.is_symlink() and os.path.basename(os.readlink(wants)) == TIMER:
            wants.unlink()
            removed.append(str(wants))
        todo += [f"systemctl stop {TIMER}", "systemctl daemon-reload"]
    for path in plan.present:
        Path(path).unlink()
        removed.append(path)
    if plan.units_present and places.systemctl is not None:
        places.systemctl(["daemon-reload"])
        ran.append("systemctl daemon-reload")
    return UninstallResult(tuple(removed), tuple(ran), tuple(todo), plan.looked_at)


def uninstall(places: Places) -> UninstallResult:
    return apply_uninstall(plan_uninstall(places), places)


def host_systemctl(places: Places) -> Optional[Systemctl]:
    """The real systemctl, when systemd runs this host and the units go to its directory."""
    if places.systemd_dir != SYSTEMD_DIR or not os.path.isdir(SYSTEMD_RUNNING):
        return None

    def systemctl(args: Sequence[str]) -> None:
        from unban.system import run

        run("systemd", ["systemctl", *args], timeout=60)

    return systemctl
