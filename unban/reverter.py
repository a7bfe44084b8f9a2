"""Change sets with backups, atomic writes and rollback (after certbot's reverter).

A change set is a numbered checkpoint directory under `<state dir>/changes/`, with a
`manifest.json` and one backup per file. The rule, as in certbot: *register a file before
writing it* (`ChangeSet.register`), so the backup (content, owner, mode, times) is on disk before
the first byte of the file changes. Changes that are not files (a live `addignoreip` on a running
server) are recorded as undo actions: plain JSON with a `kind` that the caller knows how to undo.

Writes are atomic, like ufw's `util.fsync_rename`: a temp file in the target's own directory,
owner and mode copied, fsync, rename over the target, fsync the directory.

The manifest is rewritten (atomically) after every registration, so a change set interrupted
half-way is still complete enough to roll back (`status` stays "in-progress").
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Union

from unban.errors import InputError, UnbanError
from unban.locking import FileLock

DEFAULT_STATE_DIR = "/var/lib/unban"
MANIFEST = "manifest.json"
StrPath = Union[str, "os.PathLike[str]"]
UndoHandler = Callable[[Mapping[str, Any]], None]


class ReverterError(UnbanError):
    """The state dir or a change set cannot be used; says which and why."""


# ---------------------------------------------------------------- atomic writes


def atomic_write(
    path: StrPath,
    data: bytes,
    *,
    mode: Optional[int] = None,
    uid: Optional[int] = None,
    gid: Optional[int] = None,
) -> None:
    """Replace `path` with `data` atomically, keeping its owner and mode.

    A symlink is resolved first (the link stays, its target is replaced). A new file gets
    `mode` (default 0644) and the caller's owner unless `uid`/`gid` are given.
    """
    target = Path(os.path.realpath(path))
    directory = target.parent
    try:
        current: Optional[os.stat_result] = os.stat(target)
    except FileNotFoundError:
        current = None
    if current is not None:
        mode = stat.S_IMODE(current.st_mode) if mode is None else mode
        uid = current.st_uid if uid is None else uid
        gid = current.st_gid if gid is None else gid
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".unban-tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            if uid is not None or gid is not None:
                os.fchown(handle.fileno(), -1 if uid is None else uid, -1 if gid is None else gid)
            os.fchmod(handle.fileno(), 0o644 if mode is None else mode)
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    fsync_dir(directory)


def fsync_dir(directory: StrPath) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_json(path: Path, value: Any) -> None:
    atomic_write(path, (json.dumps(value, indent=2, sort_keys=True) + "\n").encode(), mode=0o600)


# ---------------------------------------------------------------- records


@dataclass(frozen=True)
class FileRecord:
    """One registered file: what it was before the change set touched it."""

    path: str
    existed: bool
    backup: Optional[str] = None  # file name inside the change set directory
    uid: int = 0
    gid: int = 0
    mode: int = 0o644
    atime_ns: int = 0
    mtime_ns: int = 0
    sha256: str = ""
    kind: str = "file"  # a tag for the caller, e.g. "fail2ban-db"

    @staticmethod
    def from_json(data: Mapping[str, Any]) -> FileRecord:
        return FileRecord(**{k: data[k] for k in FileRecord.__dataclass_fields__ if k in data})


@dataclass
class ChangeSetInfo:
    """A change set as `unban history` shows it."""

    id: str
    created: float
    description: str
    status: str  # in-progress | done | rolled-back
    files: list[FileRecord] = field(default_factory=list)
    actions: list[dict[str, Any]] = field(default_factory=list)
    rolled_back: Optional[float] = None
    kind: str = ""  # the command that made it: me, heal, remove, delete, ignore, unignore, ...

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
        }

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
                os.makedirs(directory, 0o700, exist_ok=True)
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
        """A new, empty change set (status in-progress) with the next number; `kind` names the
        command that makes it (`unban history` shows it)."""
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
            info = ChangeSetInfo(str(number), time.time(), description, "in-progress", kind=kind)
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

    def get(self, change_id: Optional[str] = None) -> ChangeSetInfo:
        """Change set `change_id`, or the newest one not rolled back yet."""
        infos = self.list()
        if change_id is None:
            pending = [i for i in infos if i.status != "rolled-back"]
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
    ) -> ChangeSetInfo:
        """Undo a change set: its actions newest-first, then its files, byte for byte.

        `handlers` maps an action's `kind` to the function that undoes it. `check` may refuse
        (raise) before anything is touched. Raises ReverterError naming what could not be
        restored; what could be restored is restored.
        """
        handlers = handlers or {}
        with self._lock():
            info = self.get(change_id)
            if info.status == "rolled-back":
                raise InputError(f"change set {info.id} was already rolled back")
            missing = sorted({a.get("kind", "?") for a in info.actions} - set(handlers))
            if missing:
                raise ReverterError(
                    f"change set {info.id} has actions unban cannot undo here: {', '.join(missing)}"
                )
            if check is not None:
                check(info)
            directory = self.directory(info)
            failures: list[str] = []
            for action in reversed(info.actions):
                try:
                    handlers[action["kind"]](action)
                except Exception as exc:  # noqa: BLE001 - keep restoring the rest
                    failures.append(f"{action.get('kind')}: {exc}")
            for record in reversed(info.files):
                try:
                    _restore(directory, record)
                except OSError as exc:
                    failures.append(f"{record.path}: {exc.strerror or exc}")
            if failures:
                raise ReverterError(
                    f"change set {info.id} was only partly rolled back: {'; '.join(failures)}"
                )
            info.status = "rolled-back"
            info.rolled_back = time.time()
            _write_json(directory / MANIFEST, info.to_json())
            return info


def _restore(directory: Path, record: FileRecord) -> None:
    if not record.existed:
        try:
            os.unlink(record.path)
            fsync_dir(os.path.dirname(record.path) or ".")
        except FileNotFoundError:
            pass
        return
    data = (directory / (record.backup or "")).read_bytes()
    atomic_write(record.path, data, mode=record.mode, uid=record.uid, gid=record.gid)
    os.utime(record.path, ns=(record.atime_ns, record.mtime_ns), follow_symlinks=True)


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
            atomic_write(self.path / backup, data, mode=0o600)
            record = FileRecord(
                path=real,
                existed=True,
                backup=backup,
                uid=info.st_uid,
                gid=info.st_gid,
                mode=stat.S_IMODE(info.st_mode),
                atime_ns=info.st_atime_ns,
                mtime_ns=info.st_mtime_ns,
                sha256=hashlib.sha256(data).hexdigest(),
                kind=kind,
            )
        self.info.files.append(record)
        self.save()
        return record

    def write(self, path: StrPath, data: bytes, *, mode: Optional[int] = None) -> None:
        """Register `path` (if not yet) and replace it atomically with `data`."""
        self.register(path)
        atomic_write(path, data, mode=mode)

    def record_action(self, kind: str, **data: Any) -> None:
        """Note a non-file change and how to undo it (the caller's handler for `kind`)."""
        self.info.actions.append({"kind": kind, **data})
        self.save()

    def is_empty(self) -> bool:
        return not self.info.files and not self.info.actions

    def finalize(self) -> None:
        self.info.status = "done"
        self.save()

    def discard(self) -> None:
        """Remove an empty change set (nothing was changed)."""
        if not self.is_empty():
            raise ReverterError(f"change set {self.id} is not empty; roll it back instead")
        for child in self.path.iterdir():
            child.unlink()
        self.path.rmdir()

    def rollback(self, handlers: Optional[Mapping[str, UndoHandler]] = None) -> None:
        """Undo this change set now (a later step failed)."""
        self.reverter.rollback(self.id, handlers=handlers)


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
