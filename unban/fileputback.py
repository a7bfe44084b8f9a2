"""A registered file's record in a change set, and putting that file back from it: only what
unban did is undone (`unban.reverter`'s module docstring says how)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from unban.atomic import atomic_write, fsync_dir, remove_temp_files
from unban.errors import ReverterError
from unban.linemerge import Conflict, take_out


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
    kind: str = "file"  # a tag for the caller, e.g. "hosts"
    # unban's own edits, in order: (copy of the file just before, copy of what unban wrote)
    # inside the change set dir; "" for "the file did not exist" (before) or "unban removed
    # it" (written). Empty: never written by unban.
    edits: tuple[tuple[str, str], ...] = ()
    reverted: bool = False  # put back already (a rollback that failed later skips it)

    @property
    def written(self) -> bool:
        return bool(self.edits)

    @staticmethod
    def from_json(data: Mapping[str, Any]) -> FileRecord:
        fields = {k: data[k] for k in FileRecord.__dataclass_fields__ if k in data}
        fields["edits"] = tuple((str(a), str(b)) for a, b in data.get("edits", []))
        return FileRecord(**fields)


@dataclass(frozen=True)
class _PutBack:
    data: Optional[bytes]  # None: remove the file (unban created it)
    exact: bool  # the backup byte for byte, with owner, mode and times


def file_put_back(directory: Path, record: FileRecord) -> Optional[_PutBack]:
    """What putting `record` back writes now; None when there is nothing to undo.

    unban's edits are reversed newest-first on the file as it is now: an edit whose result is
    still there gives back exactly what it replaced; otherwise its lines are taken out
    (`linemerge.take_out`), so changes made by others (before or after it) stay."""
    if record.reverted or not record.edits:
        return None  # put back already, or unban never wrote it (it may have been registered)
    try:
        with open(record.path, "rb") as handle:
            current: Optional[bytes] = handle.read()
    except FileNotFoundError:
        current = None
    content = current
    for before_name, written_name in reversed(record.edits):
        before = (directory / before_name).read_bytes() if before_name else None
        written = (directory / written_name).read_bytes() if written_name else None
        if content == written:
            content = before
        elif content == before:
            continue  # this edit is not there (already taken out)
        elif written is None:
            raise ReverterError(
                f"{record.path} was made again since unban removed it: not put back (its backup "
                f"is {directory / (before_name or record.backup or '')})"
            )
        elif content is None:
            raise ReverterError(
                f"{record.path} was removed since unban wrote it: not put back (its backup "
                f"is {directory / (record.backup or '')})"
            )
        else:
            try:
                content = take_out(before or b"", written, content)
            except Conflict as exc:
                raise ReverterError(
                    f"{record.path} changed since unban wrote it and {exc}: nothing was "
                    f"changed; take unban's edit out by hand (it wrote {directory / written_name})"
                ) from None
            if before is None and not content:
                content = None
    if content == current:
        return None
    backup = (directory / record.backup).read_bytes() if record.backup else None
    return _PutBack(content, exact=content == backup)


def restore_file(directory: Path, record: FileRecord) -> None:
    plan = file_put_back(directory, record)
    remove_temp_files(record.path)
    if plan is None:
        return
    if plan.data is None:
        try:
            os.unlink(record.path)
            fsync_dir(os.path.dirname(record.path) or ".")
        except FileNotFoundError:
            pass
        return
    if not plan.exact:
        atomic_write(record.path, plan.data)  # keeps the file's owner and mode as they are now
        return
    atomic_write(record.path, plan.data, mode=record.mode, uid=record.uid, gid=record.gid)
    os.utime(record.path, ns=(record.atime_ns, record.mtime_ns), follow_symlinks=True)
