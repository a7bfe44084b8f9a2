"""A progress line on stderr when a step runs longer than a second.

Only for a person at a terminal: never when stderr is not a TTY (cron mails every byte of
output) and never with --json. The line names the step and the seconds so far, and is erased
before anything else is printed, so stdout reads exactly as without it.
"""

from __future__ import annotations

import sys
import threading
import time
from types import TracebackType
from typing import Callable, Optional, TextIO

DELAY = 1.0  # seconds a step runs before its line appears
TICK = 0.5  # seconds between updates of the line
CLEAR = "\r\x1b[K"


def stderr_is_terminal() -> bool:
    return sys.stderr.isatty()


class Progress:
    """`with Progress(enabled) as progress: progress.step("reading every layer") ...`

    `step` starts a new step (the line, if shown, goes); `echo` prints a line on stdout with
    the progress line out of its way. Disabled, both do only what they must (echo prints).
    """

    def __init__(
        self,
        enabled: bool,
        *,
        stream: Optional[TextIO] = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.enabled = enabled
        self.stream = stream if stream is not None else sys.stderr
        self.clock = clock
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._label: Optional[str] = None
        self._started = 0.0
        self._shown = False
        self._thread: Optional[threading.Thread] = None

    def __enter__(self) -> Progress:
        if self.enabled:
            self._thread = threading.Thread(target=self._run, name="unban-progress", daemon=True)
            self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        with self._lock:
            self._label = None
            self._erase()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=1.0)

    def step(self, label: str) -> None:
        with self._lock:
            self._erase()
            self._label = label
            self._started = self.clock()

    def idle(self) -> None:
        """Nothing slow runs now (the command prints): no line."""
        with self._lock:
            self._erase()
            self._label = None

    def echo(self, line: str, next_step: Optional[str] = None) -> None:
        """Print `line` on stdout; then `next_step` (if given) is what runs now."""
        import typer

        with self._lock:
            self._erase()
            typer.echo(line)
            if next_step is not None:
                self._label = next_step
                self._started = self.clock()

    def _erase(self) -> None:
        if self._shown:
            self.stream.write(CLEAR)
            self.stream.flush()
            self._shown = False

    def _run(self) -> None:
        while not self._wake.wait(TICK if self._shown else min(TICK, DELAY)):
            with self._lock:
                if self._label is None:
                    continue
                elapsed = self.clock() - self._started
                if elapsed < DELAY:
                    continue
                self.stream.write(f"{CLEAR}unban: {self._label}... {elapsed:.0f} s")
                self.stream.flush()
                self._shown = True
