"""`unban heal`: keep the addresses of /etc/unban/unban.toml unblocked, from cron or a timer.

A run loads the config (`unban.healconfig`: trust checks, width bounds), resolves its host names
(every A and AAAA record, at this run), takes the run lock, and for each protected address does
what `unban me` does, limited to the config's layers and its ignoreip setting. It prints nothing
when nothing was blocked (cron mails any output), one line per healed address otherwise, and
logs every run to syslog / the journal (ident "unban"). The exit status is the worst of the
addresses' (see `worst`).

`--install cron|systemd` and `--uninstall` are in unban.healschedule.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Optional

from unban import defaults, healconfig, recovery
from unban.address import Network, show
from unban.errors import ExitStatus, UnbanError
from unban.fail2ban import DEFAULT_CONFDIR
from unban.healconfig import HealConfig
from unban.locking import CommandLock, FileLock
from unban.reverter import DEFAULT_STATE_DIR

if TYPE_CHECKING:
    from unban.me import MeResult
    from unban.refusals import Refusal

DEFAULT_CONFIG = str(healconfig.DEFAULT_PATH)
DEFAULT_LOCK = defaults.HEAL_LOCK
LOCK_TIMEOUT = 5.0

# Syslog priorities (the stdlib module's values; kept here so pure code need not import it).
LOG_ERR, LOG_WARNING, LOG_NOTICE, LOG_INFO = 3, 4, 5, 6

Log = Callable[[int, str], None]


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
    refused: tuple[Refusal, ...] = ()  # what still refuses the address, with its fix
    error: str = ""
    change_set: Optional[str] = None
    plan: tuple[str, ...] = ()  # a dry run: the plan `unban me` would apply (its lines)
    planned: int = 0  # a dry run: the changes that plan would make

    @property
    def remaining(self) -> tuple[str, ...]:
        """What still refuses the address, one phrase each (and its fix)."""
        return tuple(
            f"{r.key}: {r.what}" + (f" (fix: {r.fix})" if r.fix else "") for r in self.refused
        )


@dataclass(frozen=True)
class HealReport:
    config: str
    protected: tuple[str, ...] = ()  # the addresses this run checked, in order
    hostnames: dict[str, list[str]] = field(default_factory=dict)
    unresolved: tuple[str, ...] = ()
    results: tuple[Healed, ...] = ()
    skipped: str = ""  # why this run did nothing (the lock was busy)
    dry_run: bool = False
    yielded: str = ""  # why it stopped before the last address (a manual unban was waiting)

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
    clear. A dry run prints each address's plan."""
    if report.dry_run:
        return [*(line for r in report.results for line in r.plan), "dry run: nothing changed"]
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
    if report.yielded:
        records.append((LOG_NOTICE, f"heal: {report.yielded}"))
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


def heal_address(
    target: Network,
    config: HealConfig,
    *,
    dry_run: bool = False,
    confdir: str = DEFAULT_CONFDIR,
    state_dir: str = DEFAULT_STATE_DIR,
) -> Healed:
    """What `unban me` does for one protected address, within the config's layers.

    The one seam tests replace (tests/cli/test_heal_cli.py). sshd's own refusals
    (AllowUsers/DenyUsers, MaxStartups) are not asked: heal lifts blocks on addresses, and a
    timer cannot fix those (`unban doctor` explains them).
    """
    from unban import me

    result = me.run_me(
        target,
        ignore=config.ignoreip,
        groups=config.layers,
        check_sshd=False,
        broad=False,
        dry_run=dry_run,
        change_kind="heal",
        keep_sshd_exempt=True,
        confdir=confdir,
        state_dir=state_dir,
    )
    return from_me(result)


def from_me(result: MeResult) -> Healed:
    """heal's view of one `unban me` run: one short phrase per change, what still refuses."""
    changes = []
    if result.applied:
        from unban.steptext import step_text

        changes = [step_text(step) for batch in result.applied for step in batch.steps]
    changes += exempted_phrases(result.ignored)
    if result.changed and not changes:
        changes.append(result.summary)
    if result.still_refused:
        status, code = STILL_BLOCKED, int(result.status)
    elif result.changed:
        status, code = (HEALED if result.blocked else UPDATED), int(ExitStatus.OK)
    else:
        status, code = CLEAR, int(ExitStatus.OK)
    plan: tuple[str, ...] = ()
    planned = 0
    if result.dry_run:
        from unban.steptext import plan_lines, planned_changes

        plan = tuple(plan_lines(result.plan, result.exemptions))
        planned = planned_changes(result.plan, result.exemptions)
    return Healed(
        result.target,
        status,
        code,
        tuple(changes),
        tuple(result.still_refused),
        "",
        result.change_set,
        plan,
        planned,
    )


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
    dry_run: bool = False,
    state_dir: Optional[str] = None,
    confdir: str = DEFAULT_CONFDIR,
) -> HealReport:
    """One heal run. `state_dir`: unban's (--state-dir), whose command lock heal takes (None:
    none, and the default state dir for the change sets); `confdir`: fail2ban's. Raises InputError (nothing changed) for a broken config, after logging it.

    A dry run plans each address as `unban me --dry-run` does, changes nothing and logs nothing.
    """
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
    # With the state dir: the lock every changing unban takes (heal waits 5 s for it and gives
    # way, between addresses, to a manual command waiting for it).
    command = None
    if state_dir is not None and not dry_run:
        command = CommandLock(state_dir, manual=False, timeout=timeout)
    try:
        if command is not None and not command.acquire():
            report = HealReport(
                str(config_path), skipped=f"{command.holder()} held the lock for {timeout:.0f} s"
            )
            _log_all(log, report)
            return report
        if command is not None and state_dir is not None:
            for line in recovery.recover(state_dir, confdir):
                log(LOG_WARNING, f"heal: {line}")
        networks, hostnames, problems = targets(config)
        real: HealOne = functools.partial(
            heal_address,
            dry_run=dry_run,
            confdir=confdir,
            state_dir=state_dir or DEFAULT_STATE_DIR,
        )
        one = heal_one or real
        results: list[Healed] = []
        yielded = ""
        for network in networks:
            if command is not None and command.manual_waiting():
                yielded = (
                    f"a manual unban is waiting: stopped after {len(results)} of "
                    f"{len(networks)} address(es); the rest are healed at the next run"
                )
                break
            results.append(_heal_guarded(one, network, config))
        report = HealReport(
            config=str(config_path),
            protected=tuple(show(n) for n in networks),
            hostnames=hostnames,
            unresolved=tuple(problems),
            results=tuple(results),
            dry_run=dry_run,
            yielded=yielded,
        )
    finally:
        if command is not None:
            command.release()
        lock.release()
    if not dry_run:
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
