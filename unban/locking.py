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
