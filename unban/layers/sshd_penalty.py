"""sshd's PerSourcePenalties (OpenSSH 9.8+) as a layer: a penalty that refuses an address.

sshd keeps penalties in its listener's memory; `find` reads them from sshd's log, judged as
`unban doctor` does (`unban.checks.sshd.penalties_check`): an active penalty, or one that may still hold,
is a finding. With `keep_exempt` (`unban heal`) an address that is not exempt is a finding even
without a penalty, so a protected address stays in the list.

The lift is `PerSourcePenaltyExemptList`: the address joins the list sshd reads first. sshd uses
the first value it reads for a keyword, so the value written is the effective one (`sshd -T`)
plus the address, in the place that wins:
- the first line already setting it (in the main config, or a drop-in it Includes before);
- else the drop-in `unban.conf` in the `sshd_config.d` directory the main config Includes
  (Debian's: /etc/ssh/sshd_config.d/*.conf);
- else a new line in the main config, before its first `Match` block (or at its end).

`apply` checks that the file is still as `find` read it, backs it up in the change set (`unban
me`'s, else one of its own), writes it atomically keeping owner and mode, checks the result
with `sshd -t` and that `sshd -T` now exempts the address (else puts the file back and raises),
then reloads sshd: `systemctl reload ssh.service` when systemd runs the listener, otherwise
SIGHUP to the pid in sshd's PidFile (sshd re-executes itself and reads the config again, which
also forgets every penalty). `revert` writes the file back as it was and reloads again.
"""

from __future__ import annotations

import fnmatch
import glob
import os
import re
import shlex
import signal
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import Optional

from unban import sshd as sshd_mod
from unban.address import Network, family_of, show
from unban.errors import LayerError, RuleChangedError
from unban.layers import Listing, ListQuery
from unban.model import Batch, Finding, LayerStatus, Step
from unban.path.model import BLOCKS, MAY_BLOCK
from unban.reverter import DEFAULT_STATE_DIR, ChangeSet, Reverter, atomic_write, batch_change_set
from unban.system import run, which

LAYER = "sshd"
FILE_KIND = "sshd"
KEYWORD = "PerSourcePenaltyExemptList"
MAIN_CONFIG = "/etc/ssh/sshd_config"
SSH_DIR = "/etc/ssh"  # where sshd looks for Include paths that are not absolute
DROP_IN = "unban.conf"
DROP_IN_HEAD = "# unban me / unban heal: addresses sshd's PerSourcePenalties never refuse\n"
UNIT = "ssh.service"


@dataclass(frozen=True)
class Edit:
    """One file as `find` read it (None: missing) and as it will be; `line`: 1-based line
    changed or added; `how`: replace | insert | append."""

    path: str
    before: Optional[str]
    after: str
    line: int
    how: str
    old_line: str = ""


@dataclass(frozen=True)
class Reload:
    """How sshd reads its config again: systemctl (unit) | signal (pidfile) | none (not running)."""

    how: str
    target: str

    def command(self) -> str:
        if self.how == "systemctl":
            return f"systemctl reload {self.target}"
        if self.how == "signal":
            return f"kill -HUP $(cat {shlex.quote(self.target)})"
        return "true  (sshd is not running: it reads the file when it starts)"


# ---------------------------------------------------------------- pure parts


def _keyword(line: str) -> tuple[str, str]:
    words = line.strip().split(None, 1)
    if not words or words[0].startswith("#"):
        return "", ""
    key = words[0].lower()
    if "=" in key:
        key, _, rest = key.partition("=")
        return key, rest
    return key, words[1].lstrip("= ").strip() if len(words) > 1 else ""


def include_paths(value: str, base: str = SSH_DIR) -> list[str]:
    """The files an `Include` line reads, in sshd's order (each glob sorted)."""
    paths: list[str] = []
    for pattern in shlex.split(value):
        full = pattern if pattern.startswith("/") else os.path.join(base, pattern)
        paths.extend(sorted(glob.glob(full)) if glob.has_magic(full) else [full])
    return paths


def includes(value: str, path: str, base: str = SSH_DIR) -> bool:
    """Whether an `Include` value covers `path` (a file that need not exist yet)."""
    for pattern in shlex.split(value):
        full = pattern if pattern.startswith("/") else os.path.join(base, pattern)
        if fnmatch.fnmatch(path, full):
            return True
    return False


def drop_in_path(main_text: str) -> Optional[str]:
    """`sshd_config.d/unban.conf` in the first `sshd_config.d` directory the main config
    Includes (before any Match block) and that exists; None when it Includes none."""
    for line in main_text.splitlines():
        key, value = _keyword(line)
        if key == "match":
            return None
        if key != "include":
            continue
        for pattern in shlex.split(value):
            full = pattern if pattern.startswith("/") else os.path.join(SSH_DIR, pattern)
            directory = os.path.dirname(full)
            candidate = os.path.join(directory, DROP_IN)
            if (
                os.path.basename(directory) == "sshd_config.d"
                and includes(pattern, candidate)
                and os.path.isdir(directory)
            ):
                return candidate
    return None


def first_setting(main: str, texts: dict[str, Optional[str]]) -> Optional[tuple[str, int, str]]:
    """(file, 1-based line, value) of the first global KEYWORD line in sshd's reading order."""

    def walk(path: str, depth: int) -> Optional[tuple[str, int, str]]:
        for number, line in enumerate((texts.get(path) or "").splitlines(), 1):
            key, value = _keyword(line)
            if key == "match":
                return None
            if key == KEYWORD.lower():
                return path, number, value
            if key == "include" and depth < 4:
                for included in include_paths(value):
                    found = walk(included, depth + 1)
                    if found is not None:
                        return found
        return None

    return walk(main, 0)


def plan_edit(
    main: str, texts: dict[str, Optional[str]], effective: Optional[str], address: str
) -> Edit:
    """The edit that puts `address` into the effective PerSourcePenaltyExemptList."""
    value = f"{effective},{address}" if effective else address
    wanted = f"{KEYWORD} {value}"
    found = first_setting(main, texts)
    if found is not None:
        path, number, _old = found
        lines = (texts[path] or "").splitlines(keepends=True)
        old = lines[number - 1]
        ending = "\n" if old.endswith("\n") else ""
        lines[number - 1] = wanted + ending
        return Edit(path, texts[path], "".join(lines), number, "replace", old.rstrip("\n"))
    main_text = texts.get(main) or ""
    main_lines = main_text.splitlines(keepends=True)
    drop_in = drop_in_path(main_text)
    if drop_in is not None:
        before = texts.get(drop_in)
        body = before if before is not None else DROP_IN_HEAD
        if body and not body.endswith("\n"):
            body += "\n"
        after = body + wanted + "\n"
        return Edit(drop_in, before, after, after.count("\n"), "append")
    match_at = next((i for i, line in enumerate(main_lines) if _keyword(line)[0] == "match"), None)
    if match_at is None:
        body = main_text if not main_text or main_text.endswith("\n") else main_text + "\n"
        after = body + wanted + "\n"
        return Edit(main, texts.get(main), after, after.count("\n"), "append")
    lines = [*main_lines[:match_at], wanted + "\n", *main_lines[match_at:]]
    return Edit(main, texts.get(main), "".join(lines), match_at + 1, "insert")


def edit_command(edit: Edit) -> str:
    path = shlex.quote(edit.path)
    new_line = edit.after.splitlines()[edit.line - 1]
    if edit.how == "replace":
        script = f"{edit.line}c\\{new_line}"
        return f"sed -i {shlex.quote(script)} {path}"
    if edit.how == "insert":
        script = f"{edit.line}i {new_line}"
        return f"sed -i {shlex.quote(script)} {path}"
    if edit.before is None:
        return (
            f"printf '%s\\n' {shlex.quote(DROP_IN_HEAD.strip())} {shlex.quote(new_line)} > {path}"
        )
    return f"printf '%s\\n' {shlex.quote(new_line)} >> {path}"


def undo_edit_command(edit: Edit) -> str:
    path = shlex.quote(edit.path)
    if edit.how == "replace":
        script = f"{edit.line}c\\{edit.old_line}"
        return f"sed -i {shlex.quote(script)} {path}"
    if edit.before is None:
        return f"rm {path}"
    return f"sed -i '{edit.line}d' {path}"


def check_argv(main: Optional[str]) -> list[str]:
    return ["sshd", "-t", *(["-f", main] if main else [])]


# ---------------------------------------------------------------- the layer


@dataclass(frozen=True)
class _Seen:
    edit: Edit
    reload: Reload


class SshdPenaltyLayer:
    """PerSourcePenalties penalties on an address, lifted with PerSourcePenaltyExemptList."""

    name = LAYER

    def __init__(
        self,
        config_path: Optional[str] = None,
        state_dir: str = DEFAULT_STATE_DIR,
        *,
        keep_exempt: bool = False,
        logs: Sequence[str] = (),
        change_set: Optional[ChangeSet] = None,
    ) -> None:
        self.config_path = config_path  # sshd -f FILE; None: sshd's own default
        self.state_dir = state_dir
        self.keep_exempt = keep_exempt
        self.logs = tuple(logs)  # sshd's log files (default: the journal, auth.log)
        self.change_set = change_set  # unban me's change set; None: one per batch
        self._seen: dict[Finding, _Seen] = {}
        self._own: dict[Batch, str] = {}

    @property
    def main(self) -> str:
        return self.config_path or MAIN_CONFIG

    # -- reading

    def _config(self) -> Optional[sshd_mod.SshdConfig]:
        """sshd's global configuration (`sshd -T`), or None when there is no sshd here."""
        if which("sshd") is None:
            return None
        argv = ["sshd", "-T", *(["-f", self.config_path] if self.config_path else [])]
        result = run(LAYER, argv, check=False, timeout=30)
        if result.returncode != 0:
            message = " ".join(result.stderr.split()) or f"exit status {result.returncode}"
            raise LayerError(LAYER, f"'sshd -T' failed: {message}")
        return sshd_mod.parse_dump(result.stdout)

    def status(self) -> list[LayerStatus]:
        try:
            config = self._config()
        except LayerError as exc:
            return [LayerStatus(LAYER, False, str(exc))]
        if config is None:
            return [LayerStatus(LAYER, False, "sshd is not installed")]
        if config.per_source_penalties is None:
            return [LayerStatus(LAYER, False, "this sshd has no PerSourcePenalties (9.8+)")]
        return [
            LayerStatus(
                LAYER,
                True,
                f"PerSourcePenalties {config.per_source_penalties}; exempt: "
                f"{config.penalty_exempt or 'none'} (single addresses only)",
            )
        ]

    def find(self, target: Network) -> list[Finding]:
        if target.num_addresses != 1:
            return []
        try:
            config = self._config()
        except LayerError:
            return []  # status says why
        if config is None or config.per_source_penalties in (None, "no"):
            return []
        address = show(target)
        if sshd_mod.in_exempt_list(config, address):
            return []
        rule = self._penalty(config, address)
        if rule is None and not self.keep_exempt:
            return []
        texts = self._texts()
        edit = plan_edit(self.main, texts, config.penalty_exempt, address)
        finding = Finding(
            layer=LAYER,
            backend="openssh",
            family=family_of(target),
            table=edit.path,
            chain=None,
            line=edit.line,
            handle=None,
            rule=rule or f"not in {KEYWORD} (kept there for unban heal)",
            verdict="penalty",
            owner="sshd",
            network=address,
            targeted=True,
        )
        self._seen[finding] = _Seen(edit, self._reload(config))
        return [finding]

    def _penalty(self, config: sshd_mod.SshdConfig, address: str) -> Optional[str]:
        """What the log says about a penalty on `address` that holds (or may), else None."""
        # Imported here: on an sshd without PerSourcePenalties (before 9.8) no log is read,
        # and a find does not load doctor's checks and the log readers.
        from unban.checks.sshd import penalties_check
        from unban.logs import mtimes, read_logs

        hits, sources = read_logs(address, self.logs)
        check = penalties_check(config, address, hits, None, file_times=mtimes(sources))
        if check.verdict in (BLOCKS, MAY_BLOCK):
            return check.summary
        return None

    def _texts(self) -> dict[str, Optional[str]]:
        """The main config, what it Includes, and the drop-in unban writes, as read now."""
        texts: dict[str, Optional[str]] = {}

        def read(path: str, depth: int) -> None:
            if path in texts:
                return
            texts[path] = _read_text(path)
            for line in (texts[path] or "").splitlines():
                key, value = _keyword(line)
                if key == "include" and depth < 4:
                    for included in include_paths(value):
                        read(included, depth + 1)

        read(self.main, 0)
        drop_in = drop_in_path(texts[self.main] or "")
        if drop_in is not None:
            texts.setdefault(drop_in, _read_text(drop_in))
        return texts

    def _reload(self, config: sshd_mod.SshdConfig) -> Reload:
        pidfile = config.value("pidfile") or "/run/sshd.pid"
        pid = _read_pid(pidfile)
        if pid is None:
            return Reload("none", "")
        if os.path.isdir("/run/systemd/system") and which("systemctl") is not None:
            result = run(
                LAYER,
                ["systemctl", "show", "-p", "MainPID", "--value", UNIT],
                check=False,
                timeout=10,
            )
            if result.returncode == 0 and result.stdout.strip() == str(pid):
                return Reload("systemctl", UNIT)
        return Reload("signal", pidfile)

    def listings(self, query: ListQuery) -> list[Listing]:
        if query.table or query.chain:
            return []
        try:
            config = self._config()
        except LayerError:
            return []
        if config is None or config.per_source_penalties is None:
            return []
        exempt = config.penalty_exempt or "none"
        lines = (f"PerSourcePenalties {config.per_source_penalties}", f"{KEYWORD} {exempt}")
        data = {"penalties": config.per_source_penalties, "exempt": config.penalty_exempt}
        return [Listing(LAYER, "sshd PerSourcePenalties", lines, data)]

    # -- planning and changing

    def plan(self, findings: Sequence[Finding]) -> list[Batch]:
        batches = []
        for finding in findings:
            seen = self._seen.get(finding)
            if finding.layer != LAYER or seen is None:
                continue
            edit, reload = seen.edit, seen.reload
            check = " ".join(check_argv(self.config_path))
            step = Step(
                finding,
                f"{edit_command(edit)} && {check} && {reload.command()}",
                f"{undo_edit_command(edit)} && {check} && {reload.command()}",
            )
            write = ("write", edit.path, edit.before, edit.after)
            again = ("reload", reload.how, reload.target)
            undo = ("write", edit.path, edit.after, edit.before)
            batches.append(Batch(LAYER, edit.path, (step,), (write, again), (undo, again)))
        return batches

    def apply(self, batch: Batch) -> None:
        (_w, path, before, after), (_r, how, target) = batch.payload
        current = _read_text(path)
        if current != before:
            raise RuleChangedError(
                LAYER, f"{path} changed since it was read; nothing was changed. Run unban again"
            )
        kept = partial(self._own.__setitem__, batch)
        description = f"sshd: {KEYWORD} in {path}"
        try:
            with batch_change_set(self.change_set, self.state_dir, description, kept) as change_set:
                try:
                    mode = None if os.path.exists(path) else 0o644
                    change_set.write(path, after.encode(), mode=mode, kind=FILE_KIND)
                    self._check(batch.steps[0].finding.network)
                    _reload(Reload(how, target))
                except (LayerError, OSError):
                    self._put(path, before)
                    raise
        except OSError as exc:
            raise LayerError(LAYER, f"could not write {path}: {exc.strerror or exc}") from None

    def revert(self, batch: Batch) -> None:
        """Put the file back as it was before `batch` and reload sshd (also for `unban undo`
        in a later process: its change set then restores the same bytes, with their times)."""
        (_w, path, after, before), (_r, how, target) = batch.undo_payload
        change_id = self._own.pop(batch, None)
        if change_id is not None:
            Reverter(self.state_dir).rollback(change_id)
        elif _read_text(path) == after:
            self._put(path, before)
        run(LAYER, check_argv(self.config_path), check=False, timeout=30)
        _reload(Reload(how, target))

    def _check(self, address: str) -> None:
        result = run(LAYER, check_argv(self.config_path), check=False, timeout=30)
        if result.returncode != 0:
            message = " ".join(result.stderr.split()) or f"exit status {result.returncode}"
            raise LayerError(LAYER, f"`sshd -t` refused the new config: {message}")
        config = self._config()
        if config is None or not sshd_mod.in_exempt_list(config, address):
            raise LayerError(
                LAYER,
                f"sshd -T does not show {address} in {KEYWORD} after the edit (another "
                "setting read first wins?)",
            )

    def _write(self, path: str, text: str) -> None:
        exists = os.path.exists(path)
        atomic_write(path, text.encode(), mode=None if exists else 0o644)

    def _put(self, path: str, text: Optional[str]) -> None:
        try:
            if text is None:
                os.unlink(path)
            else:
                self._write(path, text)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise LayerError(LAYER, f"could not put {path} back: {exc.strerror or exc}") from None


def step_text(finding: Finding) -> str:
    """What a step of this layer does, in words (for `unban me`'s plan)."""
    return f"add {finding.network} to sshd's {KEYWORD} in {finding.table} ({finding.rule})"


def _reload(reload: Reload) -> None:
    if reload.how == "systemctl":
        run(LAYER, ["systemctl", "reload", reload.target], timeout=60)
    elif reload.how == "signal":
        pid = _read_pid(reload.target)
        if pid is None:
            return  # sshd stopped meanwhile: it reads the file when it starts
        try:
            os.kill(pid, signal.SIGHUP)
        except ProcessLookupError:
            return
        except OSError as exc:
            raise LayerError(LAYER, f"could not signal sshd ({pid}): {exc.strerror}") from None


def _read_pid(pidfile: str) -> Optional[int]:
    try:
        with open(pidfile) as handle:
            text = handle.read().strip()
    except OSError:
        return None
    if not re.fullmatch(r"\d+", text):
        return None
    pid = int(text)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    return pid


def _read_text(path: str) -> Optional[str]:
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as handle:
            return handle.read()
    except FileNotFoundError:
        return None
