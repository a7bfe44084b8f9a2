"""Atomic writes: the one way unban writes a file (after ufw's `util.fsync_rename`).

A temp file in the target's own directory gets the data, the target's owner, mode and extended
attributes (POSIX ACLs, SELinux label); it is fsynced, renamed over the target, and the
directory is fsynced. Files others append to without a lock (hosts.deny, which fail2ban's
hostsdeny action appends to) can be written so that no appended line is lost (`rebase`).
"""

from __future__ import annotations

import errno
import os
import stat
import time
from pathlib import Path
from typing import Callable, Optional, Union

StrPath = Union[str, "os.PathLike[str]"]
TEMP_SUFFIX = ".unban-tmp"  # atomic_write's temp files: `.NAME.XXXXXXXX.unban-tmp`


Rebase = Callable[[bytes], bytes]
SETTLE = 2.0  # seconds an appender may keep the replaced file open before its lines are taken


def atomic_write(
    path: StrPath,
    data: bytes,
    *,
    mode: Optional[int] = None,
    uid: Optional[int] = None,
    gid: Optional[int] = None,
    base: Optional[bytes] = None,
    rebase: Optional[Rebase] = None,
    sync_dir: bool = True,
) -> bytes:
    """Replace `path` with `data` atomically, keeping its owner, mode, ACLs and SELinux label;
    return what was written.

    A symlink is resolved first (the link stays, its target is replaced). A new file gets
    `mode` (default 0644) and the caller's owner unless `uid`/`gid` are given.

    For a file others append to without a lock (fail2ban's hostsdeny action appends to
    /etc/hosts.deny), give `base`, the content `data` was made from, and `rebase`, which makes
    it again from newer content: the file is read again right before the rename, and when it
    changed, `rebase(what it is now)` is written instead; after the rename, once no process has
    the replaced file open any more (up to SETTLE seconds), lines an appender still wrote into it
    are appended to the new one. No line is lost.

    `sync_dir=False` leaves out the directory's fsync: the new content is on disk before the
    rename, but after a power loss the file may still be the old one (unban's own journal, when
    the old one is a state its recovery handles and a durable write follows).
    """
    target = Path(os.path.realpath(path))
    if rebase is None:
        _replace(target, data, mode, uid, gid, sync_dir=sync_dir)
        return data
    try:
        old = os.open(target, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        _replace(target, data, mode, uid, gid)
        return data
    try:
        seen = base if base is not None else _read_fd(old)
        for _attempt in range(20):
            now = _read_fd(old)
            if now != seen:
                data, seen = rebase(now), now
            if _replace(target, data, mode, uid, gid, unless_changed=(old, seen)):
                break
        else:
            raise OSError(errno.EAGAIN, "it kept changing while unban was writing it", str(target))
        # An appender that looked the path up before the rename opens, and then writes into,
        # the replaced file: give its open a moment, then wait until nobody has it open.
        deadline = time.monotonic() + SETTLE
        time.sleep(0.05)
        while _open_elsewhere(target, old) and time.monotonic() < deadline:
            time.sleep(0.01)
        late = _read_fd(old)
    finally:
        os.close(old)
    if late != seen and late.startswith(seen):
        tail = late[len(seen) :]  # appended to the replaced file after its last read
        with open(target, "rb") as handle:
            current = handle.read()
        return atomic_write(target, current + tail, base=current, rebase=lambda newer: newer + tail)
    return data


def _open_elsewhere(target: Path, fd: int) -> bool:
    """Some other process still has the file `fd` is open on (replaced, so "(deleted)")."""
    mine = os.fstat(fd)
    wanted = f"{target} (deleted)"
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for name in fds:
            link = f"/proc/{pid}/fd/{name}"
            try:
                if os.readlink(link) != wanted:
                    continue
                found = os.stat(link)
            except OSError:
                continue
            if (found.st_dev, found.st_ino) == (mine.st_dev, mine.st_ino):
                return True
    return False


def _read_fd(fd: int) -> bytes:
    chunks: list[bytes] = []
    offset = 0
    while True:
        chunk = os.pread(fd, 1 << 20, offset)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        offset += len(chunk)


def _replace(
    target: Path,
    data: bytes,
    mode: Optional[int],
    uid: Optional[int],
    gid: Optional[int],
    *,
    unless_changed: Optional[tuple[int, bytes]] = None,
    sync_dir: bool = True,
) -> bool:
    """Write a temp file beside `target` and rename it over `target`; with `unless_changed`
    (an open fd of the file and what it held), not when it holds something else by the time
    the temp file is ready (False)."""
    directory = target.parent
    try:
        current: Optional[os.stat_result] = os.stat(target)
    except FileNotFoundError:
        current = None
    if current is not None:
        mode = stat.S_IMODE(current.st_mode) if mode is None else mode
        uid = current.st_uid if uid is None else uid
        gid = current.st_gid if gid is None else gid
    import tempfile  # here: tempfile (and random) cost a read-only run ~2 ms for nothing

    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=TEMP_SUFFIX, dir=directory)
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror or str(exc), str(target)) from exc
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            if uid is not None or gid is not None:
                os.fchown(handle.fileno(), -1 if uid is None else uid, -1 if gid is None else gid)
            os.fchmod(handle.fileno(), 0o644 if mode is None else mode)
            if current is not None:
                copy_xattrs(target, handle.fileno())
            os.fsync(handle.fileno())
        if unless_changed is not None and _read_fd(unless_changed[0]) != unless_changed[1]:
            os.unlink(tmp)
            return False
        os.replace(tmp, target)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(exc, OSError) and exc.filename != str(target):
            raise OSError(exc.errno, exc.strerror or str(exc), str(target)) from exc
        raise
    if sync_dir:
        fsync_dir(directory)
    return True


def copy_xattrs(source: StrPath, fd: int) -> list[str]:
    """Give the file open as `fd` every extended attribute of `source` (as ufw's fsync_rename
    does): its POSIX ACLs (`system.posix_acl_access`, set after the mode, whose group bits the
    ACL's mask then keeps), its SELinux label (`security.selinux`), `user.*` ones. Return the
    names. A file system without xattrs has nothing to copy; one that refuses an attribute the
    original has fails the write (a file silently losing its ACL is what this prevents)."""
    try:
        names = os.listxattr(source)
    except OSError as exc:
        if exc.errno in (errno.ENOTSUP, errno.EOPNOTSUPP):
            return []
        raise
    for name in names:
        os.setxattr(fd, name, os.getxattr(source, name))
    return names


def fsync_dir(directory: StrPath) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_temp_files(path: StrPath) -> list[str]:
    """Remove atomic_write's temp files for `path` (`.NAME.*.unban-tmp`) that a killed unban
    left; return their paths."""
    target = Path(os.path.realpath(path))
    removed = []
    try:
        candidates = list(target.parent.glob(f".{target.name}.*{TEMP_SUFFIX}"))
    except OSError:
        return []
    for leftover in candidates:
        try:
            leftover.unlink()
            removed.append(str(leftover))
        except FileNotFoundError:
            pass
    return removed
