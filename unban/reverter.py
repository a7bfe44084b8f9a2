"""Change sets: a write-ahead journal with backups, atomic writes and rollback (after certbot's
reverter).

A change set is a numbered directory under `<state dir>/changes/` holding `manifest.json` (the
journal) and the files' copies. The manifest is rewritten atomically (fsync of the file and of
its directory) at every step, and every step is written down *before* it is done:

- a file is registered (its backup, owner, mode and times on disk) before its first byte
  changes, and the content unban is about to write is kept (`NNN-name.written`) before the
  rename that puts it in place;
- a change that is not a file (a batch of rules, a live `addignoreip`) is recorded as an action
  (plain JSON with a `kind` its caller knows how to undo) in state "pending" before it is made,
  "applied" after, "reverted" once it was put back ("not-applied": it failed and changed
  nothing). So nothing is ever undone twice, and a run killed half-way is "in-progress" with
  a dead owner (`Reverter.incomplete`), which the next command puts back.

Putting a file back undoes only what unban did: a file unban never wrote is left alone; one
still as unban wrote it gets its backup back byte for byte (owner, mode, times); one changed
since gets unban's own edit taken out line by line (`unban.linemerge`), or, when the lines
unban wrote changed too, a refusal naming the file and the lines, before anything is touched.

Files are written by `unban.atomic.atomic_write` (re-exported here), the one writer.
"""

from __future__ import annotations

import builtins
import json
import os
import stat
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Optional, Union

from unban.atomic import TEMP_SUFFIX, Rebase, atomic_write, fsync_dir, remove_temp_files
from unban.defaults import DEFAULT_STATE_DIR
from unban.errors import InputError, ReverterError
from unban.fileputback import FileRecord, file_put_back, restore_file
from unban.locking import FileLock

MANIFEST = "manifest.json"
IN_PROGRESS, DONE, FAILED, ROLLED_BACK = "in-progress", "done", "failed", "rolled-back"
PENDING, APPLIED, REVERTED, NOT_APPLIED = "pending", "applied", "reverted", "not-applied"
# An action may name files (FILES_FIRST: [path, ...]) that are put back right before it is
# undone: a daemon's restart or reload that must read them as they were again. Every other
# file is put back after all the actions.
FILES_FIRST = "files_first"
StrPath = Union[str, "os.PathLike[str]"]
UndoHandler = Callable[[Mapping[str, Any]], None]


# ---------------------------------------------------------------- atomic writes


def _write_json(path: Path, value: Any) -> None:
    """A state dir file (manifest, journal): a failure names the state dir and why."""
    data = (json.dumps(value, indent=2, sort_keys=True) + "\n").encode()
    try:
        atomic_write(path, data, mode=0o600)
    except OSError as exc:
        raise state_dir_error(path.parent, exc) from None


def state_dir_error(directory: StrPath, exc: OSError) -> ReverterError:
    return ReverterError(
        f"cannot write unban's state dir {os.fspath(directory)}: {exc.strerror or exc}"
    )


# ---------------------------------------------------------------- records


@dataclass
class ChangeSetInfo:
    """A change set as `unban history` shows it."""

    id: str
    created: float
    description: str
    status: str  # in-progress | done | failed (put back when the run failed) | rolled-back
    files: list[FileRecord] = field(default_factory=list)
    actions: list[dict[str, Any]] = field(default_factory=list)
    rolled_back: Optional[float] = None
    kind: str = ""  # the command that made it: me, heal, remove, delete, ignore, unignore, ...
    owner: tuple[int, int] = (0, 0)  # (pid, start time in clock ticks) of the process making it

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "created": self.created,
            "description": self.description,
            "status": self.status,
            "files": [r.__dict__ for r in self.files],
            "actions": self.actions,
            "rolled_back": self.rolled_back,
            "kind": self.kind,
            "owner": list(self.owner),
        }

    @property
    def finished(self) -> bool:
        """Nothing of it is left to undo (put back already, or failed and put back)."""
        return self.status in (ROLLED_BACK, FAILED)

    @staticmethod
    def from_json(data: Mapping[str, Any]) -> ChangeSetInfo:
        return ChangeSetInfo(
            id=str(data["id"]),
            created=float(data["created"]),
            description=str(data.get("description", "")),
            status=str(data.get("status", "in-progress")),
            files=[FileRecord.from_json(r) for r in data.get("files", [])],
            actions=[dict(a) for a in data.get("actions", [])],
            rolled_back=data.get("rolled_back"),
            kind=str(data.get("kind", "")),
            owner=_owner(data.get("owner")),
        )


# ---------------------------------------------------------------- the reverter


class Reverter:
    """The state dir (default /var/lib/unban, mode 0700) and its change sets."""

    def __init__(self, state_dir: StrPath = DEFAULT_STATE_DIR) -> None:
        self.state_dir = Path(state_dir)
        self.changes_dir = self.state_dir / "changes"

    # -- state dir

    def _ensure_dirs(self) -> None:
        for directory in (self.state_dir, self.changes_dir):
            try:
                os.mkdir(directory, 0o700)
            except FileExistsError:
                pass
            except FileNotFoundError:
                try:
                    os.makedirs(directory, 0o700, exist_ok=True)
                except OSError as exc:
                    raise state_dir_error(self.state_dir, exc) from None
            except OSError as exc:
                raise state_dir_error(self.state_dir, exc) from None
            self._check_private(directory)

    def _check_private(self, directory: Path) -> None:
        info = os.lstat(directory)
        if not stat.S_ISDIR(info.st_mode):
            raise ReverterError(f"state dir {directory} is not a directory")
        if info.st_uid != os.geteuid():
            raise ReverterError(
                f"state dir {directory} is owned by uid {info.st_uid}, not by uid {os.geteuid()}: "
                "it holds backups a root tool restores, so nobody else may own it"
            )
        if stat.S_IMODE(info.st_mode) != 0o700:
            os.chmod(directory, 0o700)

    def _lock(self) -> FileLock:
        """One unban changes the state dir at a time."""
        self._ensure_dirs()
        return FileLock(self.state_dir / "lock", 30.0, error=ReverterError, holder="another unban")

    # -- change sets

    def begin(self, description: str, *, kind: str = "") -> ChangeSet:
        """A new, empty change set (status in-progress, owned by this process) with the next
        number; `kind` names the command that makes it (`unban history` shows it)."""
        with self._lock():
            numbers = [int(p.name) for p in self._dirs() if p.name.isdigit()]
            number = max(numbers, default=0) + 1
            while True:
                path = self.changes_dir / f"{number:04d}"
                try:
                    os.mkdir(path, 0o700)
                    break
                except FileExistsError:
                    number += 1
                except OSError as exc:
                    raise state_dir_error(self.changes_dir, exc) from None
            info = ChangeSetInfo(
                str(number),
                time.time(),
                description,
                IN_PROGRESS,
                kind=kind,
                owner=process_identity(),
            )
            change_set = ChangeSet(self, path, info)
            change_set.save()
            return change_set

    def _dirs(self) -> Iterator[Path]:
        if not self.changes_dir.is_dir():
            return iter(())
        return (p for p in self.changes_dir.iterdir() if p.is_dir())

    def list(self) -> list[ChangeSetInfo]:
        """Every change set, oldest first."""
        result = []
        for path in self._dirs():
            try:
                data = json.loads((path / MANIFEST).read_text())
            except (OSError, ValueError):
                continue
            result.append(ChangeSetInfo.from_json(data))
        result.sort(key=lambda info: int(info.id) if info.id.isdigit() else 0)
        return result

    def incomplete(self) -> builtins.list[ChangeSetInfo]:
        """Change sets still in progress whose process is gone (killed half-way), oldest first."""
        return [i for i in self.list() if i.status == IN_PROGRESS and not _alive(i.owner)]

    def discard_unstarted(self) -> builtins.list[str]:
        """Remove change set directories a killed `begin` left without a manifest (nothing was
        changed before the manifest was on disk); return them."""
        removed = []
        for path in self._dirs():
            if (path / MANIFEST).exists():
                continue
            for child in path.iterdir():
                if child.name.startswith(f".{MANIFEST}.") and child.name.endswith(TEMP_SUFFIX):
                    child.unlink()
            try:
                path.rmdir()
            except OSError:
                continue  # something else is in it: leave it for a person to look at
            removed.append(str(path))
        return removed

    def get(self, change_id: Optional[str] = None) -> ChangeSetInfo:
        """Change set `change_id`, or the newest one with something left to undo."""
        infos = self.list()
        if change_id is None:
            pending = [i for i in infos if not i.finished]
            if not pending:
                raise InputError(f"no change set to roll back in {self.changes_dir}")
            return pending[-1]
        wanted = change_id.lstrip("0") or "0"
        for info in infos:
            if info.id == wanted:
                return info
        known = ", ".join(i.id for i in infos) or "none"
        raise InputError(f"no change set {change_id} in {self.changes_dir} (known: {known})")

    def directory(self, info: ChangeSetInfo) -> Path:
        return self.changes_dir / f"{int(info.id):04d}"

    def rollback(
        self,
        change_id: Optional[str] = None,
        *,
        handlers: Optional[Mapping[str, UndoHandler]] = None,
        check: Optional[Callable[[ChangeSetInfo], None]] = None,
        status: str = ROLLED_BACK,
    ) -> ChangeSetInfo:
        """Undo a change set: its actions newest-first, then its files (see the module doc).

        `handlers` maps an action's `kind` to the function that undoes it (it gets the action,
        whose `state` may be "pending": done or not, the handler must find out); an action's
        FILES_FIRST files are put back right before it is undone. `check` may
        refuse (raise) before anything is touched; so does a file whose unban lines changed.
        Each action and file is marked reverted as soon as it is, so a rollback that fails
        half-way (ReverterError naming what could not be restored) can be run again. `status`:
        what the change set is when everything is put back ("failed" after a failed run).
        """
        handlers = handlers or {}
        with self._lock():
            info = self.get(change_id)
            if info.finished:
                what = "rolled back" if info.status == ROLLED_BACK else "put back when it failed"
                raise InputError(f"change set {info.id} was already {what}: nothing to undo")
            left = [a for a in info.actions if a.get("state") not in (REVERTED, NOT_APPLIED)]
            missing = sorted({a.get("kind", "?") for a in left} - set(handlers))
            if missing:
                raise ReverterError(
                    f"change set {info.id} has actions unban cannot undo here: {', '.join(missing)}"
                )
            if check is not None:
                check(info)
            directory = self.directory(info)
            for leftover in directory.glob(f".*{TEMP_SUFFIX}"):
                leftover.unlink()  # a copy or manifest a killed unban was writing
            for record in info.files:
                file_put_back(directory, record)  # raises on a conflict: nothing changed yet
            change_set = ChangeSet(self, directory, info)
            failures: list[str] = []

            def put_file_back(index: int) -> None:
                record = info.files[index]
                if record.reverted:
                    return
                try:
                    restore_file(directory, record)
                except (OSError, ReverterError) as exc:
                    failures.append(f"{record.path}: {_reason(exc)}")
                    return
                info.files[index] = replace(record, reverted=True)
                change_set.save()

            for index in reversed(range(len(info.actions))):
                action = info.actions[index]
                if action.get("state") in (REVERTED, NOT_APPLIED):
                    continue
                first = {os.path.realpath(str(p)) for p in action.get(FILES_FIRST) or ()}
                for at, record in enumerate(info.files):
                    if record.path in first:
                        put_file_back(at)
                try:
                    handlers[action["kind"]](action)
                except Exception as exc:  # noqa: BLE001 - keep restoring the rest
                    failures.append(f"{action.get('kind')}: {exc}")
                    continue
                change_set.update_action(index, state=REVERTED)
            for index in reversed(range(len(info.files))):
                put_file_back(index)
            if failures:
                raise ReverterError(
                    f"change set {info.id} was only partly rolled back: {'; '.join(failures)}"
                )
            info.status = status
            info.rolled_back = time.time()
            change_set.save()
            return info


def _owner(value: Any) -> tuple[int, int]:
    if isinstance(value, (list, tuple)) and len(value) == 2:
        return int(value[0]), int(value[1])
    return 0, 0


def process_identity(pid: Optional[int] = None) -> tuple[int, int]:
    """(pid, start time): a pid alone may be reused by another process after a reboot."""
    pid = os.getpid() if pid is None else pid
    try:
        stat_line = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return pid, 0
    return pid, int(stat_line.rpartition(")")[2].split()[19])


def _alive(owner: Sequence[int]) -> bool:
    pid, start = owner[0], owner[1]
    if pid <= 0:
        return False
    current = process_identity(pid)
    return Path(f"/proc/{pid}").exists() and current[1] == start


def _reason(exc: Exception) -> str:
    if isinstance(exc, OSError):
        return exc.strerror or str(exc)
    return str(exc)


class ChangeSet:
    """A change set being made. Register every file before writing it."""

    def __init__(self, reverter: Reverter, path: Path, info: ChangeSetInfo) -> None:
        self.reverter = reverter
        self.path = path
        self.info = info

    @property
    def id(self) -> str:
        return self.info.id

    def save(self) -> None:
        _write_json(self.path / MANIFEST, self.info.to_json())

    def registered(self, path: StrPath) -> bool:
        real = os.path.realpath(path)
        return any(r.path == real for r in self.info.files)

    def register(self, path: StrPath, *, kind: str = "file") -> FileRecord:
        """Back up `path` (or note that it does not exist yet) before it is written."""
        real = os.path.realpath(path)
        for record in self.info.files:
            if record.path == real:
                return record
        try:
            info = os.stat(real)
        except FileNotFoundError:
            record = FileRecord(path=real, existed=False, kind=kind)
        else:
            if not stat.S_ISREG(info.st_mode):
                raise ReverterError(f"{real} is not a regular file; unban will not back it up")
            backup = f"{len(self.info.files):03d}-{os.path.basename(real)}"
            data = Path(real).read_bytes()
            try:
                atomic_write(self.path / backup, data, mode=0o600)
            except OSError as exc:
                raise state_dir_error(self.path, exc) from None
            record = FileRecord(
                path=real,
                existed=True,
                backup=backup,
                uid=info.st_uid,
                gid=info.st_gid,
                mode=stat.S_IMODE(info.st_mode),
                atime_ns=info.st_atime_ns,
                mtime_ns=info.st_mtime_ns,
                sha256=_sha256(data),
                kind=kind,
            )
        self.info.files.append(record)
        self.save()
        return record

    def write(
        self,
        path: StrPath,
        data: Optional[bytes],
        *,
        mode: Optional[int] = None,
        kind: str = "file",
        rebase: Optional[Rebase] = None,
    ) -> None:
        """The one way unban writes a file it changes (`data` None: removes it): register it
        (backup), keep what it is about to write in the change set, then replace it atomically
        (with `rebase`: merging what others append meanwhile, see `atomic_write`)."""
        record = self.register(path, kind=kind)
        index = self.info.files.index(record)
        stem = f"{index:03d}-{os.path.basename(record.path)}.{len(record.edits) + 1}"
        try:
            with open(record.path, "rb") as handle:
                now: Optional[bytes] = handle.read()
        except FileNotFoundError:
            now = None
        if data is None and now is None:
            return  # nothing to remove
        if rebase is not None and now is not None and data is not None:
            data = rebase(now)  # made again from what the file holds now, the base from here on
        try:
            if now is not None:
                atomic_write(self.path / f"{stem}.before", now, mode=0o600)
            if data is not None:
                atomic_write(self.path / f"{stem}.written", data, mode=0o600)
        except OSError as exc:
            raise state_dir_error(self.path, exc) from None
        edit = (
            f"{stem}.before" if now is not None else "",
            "" if data is None else f"{stem}.written",
        )
        self.info.files[index] = replace(record, edits=(*record.edits, edit))
        self.save()
        if data is None:
            os.unlink(record.path)
            fsync_dir(os.path.dirname(record.path) or ".")
            return
        atomic_write(path, data, mode=mode, base=now, rebase=rebase)

    def record_action(self, kind: str, **data: Any) -> int:
        """Note a non-file change and how to undo it (the caller's handler for `kind`), before
        it is made; return its index (for `update_action`)."""
        self.info.actions.append({"kind": kind, **data})
        self.save()
        return len(self.info.actions) - 1

    def update_action(self, index: int, **data: Any) -> None:
        """Change a recorded action (its state, its undo data once known), durably."""
        self.info.actions[index] = {**self.info.actions[index], **data}
        self.save()

    def is_empty(self) -> bool:
        return not self.info.files and not self.info.actions

    def finalize(self) -> None:
        self.info.status = DONE
        self.save()

    def discard(self) -> None:
        """Remove an empty change set (nothing was changed)."""
        if not self.is_empty():
            raise ReverterError(f"change set {self.id} is not empty; roll it back instead")
        for child in self.path.iterdir():
            child.unlink()
        self.path.rmdir()

    def rollback(
        self, handlers: Optional[Mapping[str, UndoHandler]] = None, *, status: str = FAILED
    ) -> None:
        """Undo this change set now (a later step failed): it ends "failed", nothing to undo."""
        self.reverter.rollback(self.id, handlers=handlers, status=status)


@contextmanager
def batch_change_set(
    run: Optional[ChangeSet], state_dir: StrPath, description: str, kept: Callable[[str], None]
) -> Iterator[ChangeSet]:
    """Where a layer writes one batch: the run's change set (`unban me`'s: it is finalized or
    put back with the run), else one of the batch's own, put back if the body raises, and
    finalized, its id handed to `kept` (what `revert` rolls back later), if it returns."""
    if run is not None:
        yield run
        return
    own = Reverter(state_dir).begin(description)
    try:
        yield own
    except Exception:
        own.rollback()
        raise
    own.finalize()
    kept(own.id)


def describe(infos: Sequence[ChangeSetInfo]) -> list[str]:
    """`unban rollback --list` as text."""
    if not infos:
        return ["no change sets"]
    lines = []
    for info in infos:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(info.created))
        lines.append(f"{info.id:>4}  {when}  {info.status:<11}  {info.description}")
        for record in info.files:
            what = "created" if not record.existed else "changed"
            lines.append(f"        {what} {record.path}")
        for action in info.actions:
            lines.append(f"        {action.get('summary') or action.get('kind')}")
    return lines


__all__ = [
    "FILES_FIRST",
    "DEFAULT_STATE_DIR",
    "ChangeSet",
    "ChangeSetInfo",
    "FileRecord",
    "Reverter",
    "ReverterError",
    "atomic_write",
    "describe",
    "fsync_dir",
    "remove_temp_files",
]


def _sha256(data: bytes) -> str:
    import hashlib  # only where a change set is written: loading OpenSSL costs a find 4 ms

    return hashlib.sha256(data).hexdigest()
