"""`unban heal`: keep the addresses of /etc/unban/unban.toml unblocked, from cron or a timer.

A run loads the config (`unban.healconfig`: trust checks, width bounds), resolves its host names
(every A and AAAA record, at this run), takes the run lock, and for each protected address does
what `unban me` does, limited to the config's layers and its ignoreip setting. It prints nothing
when nothing was blocked (cron mails any output), one line per healed address otherwise, and
logs every run to syslog / the journal (ident "unban"). The exit status is the worst of the
addresses' (see `worst`).

`--install cron|systemd` writes /etc/cron.d/unban, or unban-heal.service and unban-heal.timer in
/etc/systemd/system; `--uninstall` removes them. The same files are in scripts/ for the default
interval (a unit test keeps them equal to `render_*`).
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Optional

from unban import healconfig
from unban.address import Network, show
from unban.errors import ExitStatus, InputError, UnbanError
from unban.healconfig import HealConfig
from unban.locking import FileLock
from unban.reverter import atomic_write

if TYPE_CHECKING:
    from unban.me import MeResult

DEFAULT_CONFIG = str(healconfig.DEFAULT_PATH)
DEFAULT_LOCK = "/run/unban-heal.lock"
LOCK_TIMEOUT = 5.0
DEFAULT_EVERY = "5m"
CRON_DIR = "/etc/cron.d"
SYSTEMD_DIR = "/etc/systemd/system"
CRON_FILE = "unban"
SERVICE = "unban-heal.service"
TIMER = "unban-heal.timer"
INSTALLED_PROGRAM = "/usr/local/sbin/unban"  # where scripts/install.sh links it
MARK = "# Written by `unban heal --install"
SYSTEMD_RUNNING = "/run/systemd/system"  # sd_booted(): systemd is PID 1

# Syslog priorities (the stdlib module's values; kept here so pure code need not import it).
LOG_ERR, LOG_WARNING, LOG_NOTICE, LOG_INFO = 3, 4, 5, 6

Log = Callable[[int, str], None]


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
    if config is not None and config != DEFAULT_CONFIG:
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


def install(kind: str, interval: Interval, command: Sequence[str], places: Places) -> InstallResult:
    """Write the schedule files (root-owned, 0644, atomically). Nothing else is changed."""
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
    written, unchanged = [], []
    for path, text in texts.items():
        try:
            same = path.read_text(encoding="utf-8") == text
        except FileNotFoundError:
            same = False
        if same:
            unchanged.append(str(path))
            continue
        atomic_write(path, text.encode("utf-8"), mode=0o644, uid=0, gid=0)
        written.append(str(path))
    commands = ["systemctl daemon-reload", f"systemctl enable --now {TIMER}"]
    ran: list[str] = []
    todo: list[str] = []
    if kind == "systemd":
        if places.systemctl is None:
            todo = commands
        else:
            for command_text in commands:
                places.systemctl(command_text.split()[1:])
                ran.append(command_text)
    return InstallResult(
        kind=kind,
        every=interval.text(),
        schedule=schedule,
        command=tuple(command),
        written=tuple(written),
        unchanged=tuple(unchanged),
        ran=tuple(ran),
        todo=tuple(todo),
    )


def schedule(
    kind: str,
    every: Optional[str],
    config: str,
    places: Places,
    *,
    global_args: Sequence[str] = (),
    program: Optional[str] = None,
) -> InstallResult:
    """`--install KIND --every EVERY`: check the interval and the config, then write the files.

    The config must load now: a schedule that fails at every run helps nobody.
    """
    interval = parse_interval(every or DEFAULT_EVERY)
    if kind == "cron":
        interval.cron()  # refuse an interval cron cannot keep before anything else
    config_path = os.path.abspath(config)
    healconfig.load(Path(config_path))
    command = heal_command(program or installed_program(), config_path, global_args)
    return install(kind, interval, command, places)


def uninstall(places: Places) -> UninstallResult:
    """Remove the cron file and the units --install wrote (the timer disabled first).

    Without systemctl (systemd not running, or the units elsewhere) the timer's
    timers.target.wants link, if `systemctl enable` made one, goes too.
    """
    every = [places.cron_file(), *places.units()]
    present = [p for p in every if p.exists()]
    _refuse_foreign(present)
    ran: list[str] = []
    todo: list[str] = []
    removed = []
    units_present = any(p in present for p in places.units())
    if units_present and places.systemctl is not None:
        try:
            places.systemctl(["disable", "--now", TIMER])
            ran.append(f"systemctl disable --now {TIMER}")
        except UnbanError:
            pass  # not loaded: nothing to stop
    if units_present and places.systemctl is None:
        wants = Path(places.systemd_dir) / "timers.target.wants" / TIMER
        if wants.is_symlink() and os.path.basename(os.readlink(wants)) == TIMER:
            wants.unlink()
            removed.append(str(wants))
        todo += [f"systemctl stop {TIMER}", "systemctl daemon-reload"]
    for path in present:
        path.unlink()
        removed.append(str(path))
    if units_present and places.systemctl is not None:
        places.systemctl(["daemon-reload"])
        ran.append("systemctl daemon-reload")
    return UninstallResult(tuple(removed), tuple(ran), tuple(todo), tuple(str(p) for p in every))


def host_systemctl(places: Places) -> Optional[Systemctl]:
    """The real systemctl, when systemd runs this host and the units go to its directory."""
    if places.systemd_dir != SYSTEMD_DIR or not os.path.isdir(SYSTEMD_RUNNING):
        return None

    def systemctl(args: Sequence[str]) -> None:
        from unban.system import run

        run("systemd", ["systemctl", *args], timeout=60)

    return systemctl


# ---------------------------------------------------------------- one run


# healed: a block was lifted; updated: nothing blocked it, but it was exempted (ignoreip, ...);
# clear: nothing to do; still-blocked: something still refuses it; failed: see the error.
HEALED, UPDATED, CLEAR = "healed", "updated", "clear"
STILL_BLOCKED, FAILED = "still-blocked", "failed"
STATUSES = (HEALED, UPDATED, STILL_BLOCKED, FAILED, CLEAR)


@dataclass(frozen=True)
class Healed:
    """What the `me` run did for one protected address."""

    address: str
    status: str  # one of STATUSES
    exit_status: int = int(ExitStatus.OK)
    changes: tuple[str, ...] = ()  # what was done, one short phrase each
    remaining: tuple[str, ...] = ()  # what still refuses the address (and the fix)
    error: str = ""
    change_set: Optional[str] = None


@dataclass(frozen=True)
class HealReport:
    config: str
    protected: tuple[str, ...] = ()  # the addresses this run checked, in order
    hostnames: dict[str, list[str]] = field(default_factory=dict)
    unresolved: tuple[str, ...] = ()
    results: tuple[Healed, ...] = ()
    skipped: str = ""  # why this run did nothing (the lock was busy)

    @property
    def exit_status(self) -> int:
        return worst(r.exit_status for r in self.results)


_RANK = {
    int(ExitStatus.OK): 0,
    int(ExitStatus.STILL_BLOCKED): 1,
    int(ExitStatus.USAGE): 2,
    int(ExitStatus.NOT_ROOT): 3,
    int(ExitStatus.FAILED): 4,
    int(ExitStatus.ROLLBACK_FAILED): 5,
}


def worst(codes: Iterable[int]) -> int:
    """The exit status of a run: the gravest of its addresses' (5 > 1 > 4 > 2 > 3 > 0)."""
    chosen = int(ExitStatus.OK)
    for code in codes:
        if _RANK.get(int(code), 4) > _RANK.get(chosen, 4):
            chosen = int(code)
    return chosen


def result_line(result: Healed) -> Optional[str]:
    """The stdout line for one address; None when there is nothing to say (cron stays quiet)."""
    did = "; ".join(result.changes)
    still = "; ".join(result.remaining)
    undo = result.change_set
    suffix = f" (change set {undo}: `unban undo {undo}` puts it back)" if undo else ""
    if result.status == HEALED:
        return f"healed {result.address}: {did}{suffix}"
    if result.status == UPDATED:
        return f"{result.address}: {did}{suffix}"
    if result.status == STILL_BLOCKED:
        if did:
            return f"healed {result.address}: {did}{suffix}; still refused by: {still}"
        return f"{result.address} is still refused by: {still}"
    return None


def output_lines(report: HealReport) -> list[str]:
    """stdout: one line per address healed, updated or still refused; nothing when all was
    clear."""
    return [line for line in map(result_line, report.results) if line is not None]


def error_lines(report: HealReport) -> list[str]:
    """stderr: one line per address whose healing failed."""
    return [f"unban: heal {r.address}: {r.error}" for r in report.results if r.status == FAILED]


def log_records(report: HealReport) -> list[tuple[int, str]]:
    """What a run writes to syslog: one line per event, then a summary."""
    records: list[tuple[int, str]] = []
    if report.skipped:
        return [(LOG_NOTICE, f"heal: {report.skipped}; this run is skipped")]
    for name in report.unresolved:
        records.append((LOG_WARNING, f"heal: {name}; not protected at this run"))
    for result in report.results:
        line = result_line(result)
        if result.status == FAILED:
            records.append((LOG_ERR, f"heal {result.address} failed: {result.error}"))
        elif line is not None:
            level = LOG_WARNING if result.status == STILL_BLOCKED else LOG_NOTICE
            records.append((level, line))
    records.append((LOG_INFO, summary(report)))
    return records


def summary(report: HealReport) -> str:
    counts = dict.fromkeys(STATUSES, 0)
    for result in report.results:
        counts[result.status] = counts.get(result.status, 0) + 1
    head = f"heal {report.config}: {len(report.results)} address(es) checked"
    if counts[CLEAR] == len(report.results):
        return f"{head}, nothing was blocked (exit {report.exit_status})"
    parts = [f"{counts[status]} {status}" for status in STATUSES if counts[status]]
    return f"{head}: {', '.join(parts)} (exit {report.exit_status})"


def as_json(report: HealReport) -> dict[str, object]:
    """The --json summary."""
    return {
        "config": report.config,
        "skipped": report.skipped or None,
        "protected": list(report.protected),
        "hostnames": report.hostnames,
        "unresolved": list(report.unresolved),
        "results": [
            {
                "address": r.address,
                "status": r.status,
                "exit_status": r.exit_status,
                "changes": list(r.changes),
                "remaining": list(r.remaining),
                "error": r.error or None,
                "change_set": r.change_set,
            }
            for r in report.results
        ],
        "healed": [
            r.address for r in report.results if r.status in (HEALED, STILL_BLOCKED) and r.changes
        ],
        "exit_status": report.exit_status,
    }


def targets(config: HealConfig) -> tuple[list[Network], dict[str, list[str]], list[str]]:
    """The config's networks, then every address its host names resolve to now (no repeats).

    Returns (networks, {name: [addresses]}, problems).
    """
    networks = list(dict.fromkeys(config.addresses))
    resolved: dict[str, list[str]] = {}
    problems: list[str] = []
    for name in config.hostnames:
        found, failed = healconfig.resolve_hostnames([name])
        problems.extend(failed)
        resolved[name] = [show(n) for n in found]
        networks.extend(n for n in found if n not in networks)
    return networks, resolved, problems


HealOne = Callable[[Network, HealConfig], Healed]


def heal_address(target: Network, config: HealConfig) -> Healed:
    """What `unban me` does for one protected address, within the config's layers.

    The one seam tests replace (tests/cli/test_heal_cli.py). sshd's own refusals
    (AllowUsers/DenyUsers, MaxStartups) are not asked: heal lifts blocks on addresses, and a
    timer cannot fix those (`unban doctor` explains them).
    """
    from unban import me

    result = me.run_me(
        target, ignore=config.ignoreip, groups=config.layers, check_sshd=False, broad=False
    )
    return from_me(result)


def from_me(result: MeResult) -> Healed:
    """heal's view of one `unban me` run: one short phrase per change, what still refuses."""
    from unban import me

    changes = [me.step_text(step) for batch in result.applied for step in batch.steps]
    changes += exempted_phrases(result.ignored)
    if result.changed and not changes:
        changes.append(result.summary)
    remaining = tuple(
        f"{r.key}: {r.what}" + (f" (fix: {r.fix})" if r.fix else "") for r in result.still_refused
    )
    if remaining:
        status, code = STILL_BLOCKED, int(result.status)
    elif result.changed:
        status, code = (HEALED if result.blocked else UPDATED), int(ExitStatus.OK)
    else:
        status, code = CLEAR, int(ExitStatus.OK)
    return Healed(result.target, status, code, tuple(changes), remaining, "", result.change_set)


EXEMPTED = (
    ("fail2ban", "added to fail2ban's ignoreip"),
    ("sshguard", "added to sshguard's whitelist"),
    ("crowdsec", "added to CrowdSec's whitelist"),
)


def exempted_phrases(done: Sequence[str]) -> list[str]:
    """One phrase per ban source an exemption step of the run changed (its lines start with
    the source's name)."""
    return [phrase for source, phrase in EXEMPTED if any(line.startswith(source) for line in done)]


def _heal_guarded(heal_one: HealOne, target: Network, config: HealConfig) -> Healed:
    """A failure for one address is reported and the next address is still healed."""
    try:
        return heal_one(target, config)
    except UnbanError as exc:
        return Healed(show(target), FAILED, int(exc.exit_status), error=str(exc))
    except Exception as exc:  # noqa: BLE001 - one address's bug must not stop the others
        return Healed(
            show(target),
            FAILED,
            int(ExitStatus.FAILED),
            error=f"unexpected error: {type(exc).__name__}: {exc}",
        )


def run(
    config_path: Path,
    *,
    log: Log,
    lock_path: str = DEFAULT_LOCK,
    lock_timeout: Optional[float] = None,
    heal_one: Optional[HealOne] = None,
    check_owner: bool = True,
) -> HealReport:
    """One heal run. Raises InputError (nothing changed) for a broken config, after logging it."""
    try:
        config = healconfig.load(config_path, check_owner=check_owner)
    except UnbanError as exc:
        log(LOG_ERR, f"heal: {exc}")
        raise
    timeout = LOCK_TIMEOUT if lock_timeout is None else lock_timeout
    lock = FileLock(lock_path, timeout, holder="another unban heal")
    if not lock.acquire():
        report = HealReport(str(config_path), skipped=lock.busy_message())
        _log_all(log, report)
        return report
    try:
        networks, hostnames, problems = targets(config)
        one = heal_one or heal_address
        results = tuple(_heal_guarded(one, network, config) for network in networks)
        report = HealReport(
            config=str(config_path),
            protected=tuple(show(n) for n in networks),
            hostnames=hostnames,
            unresolved=tuple(problems),
            results=results,
        )
    finally:
        lock.release()
    _log_all(log, report)
    return report


def _log_all(log: Log, report: HealReport) -> None:
    for priority, message in log_records(report):
        log(priority, message)


def syslog_log(priority: int, message: str) -> None:
    """Write one line to syslog / the journal with ident "unban" (facility auth)."""
    import syslog

    syslog.openlog("unban", syslog.LOG_PID, syslog.LOG_AUTH)
    try:
        syslog.syslog(priority, message)
    finally:
        syslog.closelog()
