"""The one error tree. Only the CLI maps these to exit codes."""

from __future__ import annotations

import os
from enum import IntEnum


class ExitStatus(IntEnum):
    """Documented exit codes (README, `unban --help`)."""

    OK = 0  # done, or nothing to do
    FAILED = 1  # a change failed; what was already changed has been put back
    USAGE = 2  # bad usage or input; nothing changed
    STILL_BLOCKED = 3  # done, but something still refuses the address
    NOT_ROOT = 4  # needs root; nothing changed
    ROLLBACK_FAILED = 5  # a change failed and putting it back failed too: read the message


class UnbanError(Exception):
    """A failure with a message a person can act on."""

    exit_status = ExitStatus.FAILED


class InputError(UnbanError):
    """Bad user input: nothing was changed."""

    exit_status = ExitStatus.USAGE


class NotRootError(UnbanError):
    exit_status = ExitStatus.NOT_ROOT


class LayerError(UnbanError):
    """A layer (iptables, nft, ipset, ...) could not read or change its state."""

    def __init__(self, layer: str, message: str) -> None:
        super().__init__(f"{layer}: {message}")
        self.layer = layer


class RuleChangedError(LayerError):
    """The rule is no longer the one that was read; nothing was deleted."""

    exit_status = ExitStatus.FAILED


class ApplyError(UnbanError):
    """A batch failed while applying a plan. Says what was changed and what was put back."""

    def __init__(self, message: str, *, rollback_failed: bool) -> None:
        super().__init__(message)
        self.rollback_failed = rollback_failed
        if rollback_failed:
            self.exit_status = ExitStatus.ROLLBACK_FAILED


class ReverterError(UnbanError):
    """The state dir or a change set cannot be used; says which and why."""


class Interrupted(UnbanError):
    """A signal arrived while changes were being applied (they were finished or put back)."""


def printable(text: str) -> str:
    """`text` safe for a terminal and a cron mail, on one line: control characters, ANSI
    escapes, line and paragraph separators and bidi controls shown as Python escapes (`\\x1b`,
    `\\n`, `\\u202e`); everything else as it is."""
    return "".join(
        ch if ch.isprintable() or ch == " " else ch.encode("unicode_escape").decode("ascii")
        for ch in text
    )


def os_error_text(exc: OSError) -> str:
    """An OSError as one line a person can act on: the file and the reason (read-only file
    system, no space left on device, ...), not "unexpected error: OSError"."""
    reason = exc.strerror or str(exc)
    names = [os.fsdecode(n) for n in (exc.filename, exc.filename2) if n is not None]
    where = " -> ".join(n if len(n) <= 200 else f"{n[:100]}...{n[-40:]}" for n in names)
    return f"{where}: {reason}" if where else reason
