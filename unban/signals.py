"""Signals held while a batch runs: SIGTERM, SIGHUP and SIGINT wait until the batch has been
applied or put back, then stop the run (`Interrupted`), so that a restore is never cut midway."""

from __future__ import annotations

import signal
from types import FrameType
from typing import Optional

from unban.errors import Interrupted


class DeferredSignals:
    """Hold SIGTERM/SIGHUP/SIGINT until the running batch ends (never kill a restore midway)."""

    SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)

    def __init__(self) -> None:
        self.received: Optional[int] = None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> DeferredSignals:
        for signum in self.SIGNALS:
            self._previous[signum] = signal.signal(signum, self._record)
        return self

    def _record(self, signum: int, _frame: Optional[FrameType]) -> None:
        self.received = signum

    def check(self) -> None:
        if self.received is not None:
            raise Interrupted(f"stopped by signal {signal.Signals(self.received).name}")

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]
