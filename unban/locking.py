"""One small flock helper: the xtables lock, the state dir's lock and `unban heal`'s run lock.

An exclusive `flock` on a file, waited for up to `timeout` seconds (polled, so a signal is never
stuck in a blocking call). The lock goes with the file descriptor: a process that dies releases
it, so a stale lock file never blocks anybody.
"""

from __future__ import annotations

import fcntl
import os
import time
from typing import Callable, Optional, Union

from unban.errors import UnbanError

StrPath = Union[str, "os.PathLike[str]"]


class LockBusy(UnbanError):
    """Another process held the lock for the whole timeout."""


def busy_message(path: StrPath, timeout: float, holder: str = "another program") -> str:
    return f"{holder} held {os.fspath(path)} for {timeout:.0f} s"


class FileLock:
    """`with FileLock(path, timeout):` holds an exclusive flock on `path` (created 0600).

    `acquire()` says whether the lock was taken in time; entering the context raises
    `error(message)` instead (LockBusy unless the caller wants its own error type).
    """

    def __init__(
        self,
        path: StrPath,
        timeout: float,
        *,
        error: Optional[Callable[[str], Exception]] = None,
        holder: str = "another program",
        poll: float = 0.05,
    ) -> None:
        self.path = os.fspath(path)
        self.timeout = timeout
        self.holder = holder
        self._error = error or LockBusy
        self._poll = poll
        self._fd = -1

    @property
    def held(self) -> bool:
        return self._fd >= 0

    def acquire(self) -> bool:
        """Take the lock, waiting up to `timeout` seconds; False when it stayed busy."""
        if self.held:
            raise RuntimeError(f"{self.path} is already locked by this object")
        fd = os.open(self.path, os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600)
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    return False
                time.sleep(self._poll)
            except BaseException:
                os.close(fd)
                raise
            else:
                self._fd = fd
                return True

    def release(self) -> None:
        if self.held:
            os.close(self._fd)
            self._fd = -1

    def busy_message(self) -> str:
        return busy_message(self.path, self.timeout, self.holder)

    def __enter__(self) -> FileLock:
        if not self.acquire():
            raise self._error(self.busy_message()) from None
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


COMMAND_LOCK = "command.lock"
WAITING = "command.wait"
MANUAL_WAIT = 30.0  # seconds a manual command waits for the one running
HEAL_WAIT = 5.0  # seconds `unban heal` waits (then it skips this run)


class CommandLock:
    """One changing unban at a time for a state dir (`<state dir>/command.lock`).

    A manual command (me, remove, delete, ignore, unignore, undo, rollback) waits up to
    MANUAL_WAIT seconds, saying so once through `say`, and meanwhile holds a shared lock on
    `<state dir>/command.wait`; `unban heal` waits HEAL_WAIT seconds and, between addresses,
    asks `manual_waiting()`, so it yields to a person at a prompt. The lock file names its
    holder (pid and command line) for the message of whoever waits.
    """

    def __init__(
        self,
        state_dir: StrPath,
        *,
        manual: bool = True,
        say: Callable[[str], None] = lambda line: None,
        timeout: Optional[float] = None,
        poll: float = 0.05,
    ) -> None:
        self.directory = os.fspath(state_dir)
        self.manual = manual
        self.timeout = (MANUAL_WAIT if manual else HEAL_WAIT) if timeout is None else timeout
        self._say = say
        self._poll = poll
        self._fd = -1

    def _open(self, name: str) -> int:
        os.makedirs(self.directory, 0o700, exist_ok=True)
        return os.open(
            os.path.join(self.directory, name), os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600
        )

    def holder(self) -> str:
        try:
            with open(os.path.join(self.directory, COMMAND_LOCK)) as handle:
                text = handle.read().strip()
        except OSError:
            text = ""
        return text or "another unban"

    def acquire(self) -> bool:
        """Take the lock within the timeout; False when another unban kept it."""
        fd = self._open(COMMAND_LOCK)
        waiting = self._open(WAITING) if self.manual else -1
        deadline = time.monotonic() + self.timeout
        said = False
        try:
            while True:
                if waiting >= 0:
                    _try_flock(waiting, fcntl.LOCK_SH)
                if _try_flock(fd, fcntl.LOCK_EX):
                    break
                if not said:
                    self._say(f"waiting for {self.holder()} to finish (up to {self.timeout:.0f} s)")
                    said = True
                if time.monotonic() >= deadline:
                    os.close(fd)
                    return False
                time.sleep(self._poll)
        except BaseException:
            os.close(fd)
            raise
        finally:
            if waiting >= 0:
                os.close(waiting)
        try:  # who holds it, for the message of whoever waits; the lock holds without it
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"unban (pid {os.getpid()}: {' '.join(_argv())})\n".encode(), 0)
        except OSError:
            pass
        self._fd = fd
        return True

    def manual_waiting(self) -> bool:
        """A manual command waits for this lock (heal then stops after its current address)."""
        fd = self._open(WAITING)
        try:
            if _try_flock(fd, fcntl.LOCK_EX):
                return False
            return True
        finally:
            os.close(fd)

    def release(self) -> None:
        if self._fd >= 0:
            try:
                os.ftruncate(self._fd, 0)
            except OSError:
                pass
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> CommandLock:
        if not self.acquire():
            raise LockBusy(
                f"{self.holder()} is still changing this host after {self.timeout:.0f} s; "
                "try again when it is done"
            )
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _try_flock(fd: int, operation: int) -> bool:
    try:
        fcntl.flock(fd, operation | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _argv() -> list[str]:
    import sys

    return [os.path.basename(sys.argv[0]), *sys.argv[1:]][:8]
