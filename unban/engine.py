"""Find, plan and apply across layers. Applying keeps an undo list and replays it on failure."""

from __future__ import annotations

import signal
from collections.abc import Sequence
from dataclasses import dataclass
from types import FrameType
from typing import Callable, Optional

from unban.address import Network
from unban.errors import ApplyError, UnbanError
from unban.layers import Layer
from unban.model import Batch, Finding, LayerStatus, Plan, Report


def default_layers() -> list[Layer]:
    """Every packet-filter layer, in the order their changes are applied."""
    from unban.layers.ipset import IpsetLayer
    from unban.layers.nftables import NftablesLayer
    from unban.layers.recent import RecentLayer
    from unban.layers.routes import RoutesLayer
    from unban.layers.xtables import XtablesLayer

    xtables = XtablesLayer()
    return [xtables, NftablesLayer(), IpsetLayer(xtables), RecentLayer(xtables), RoutesLayer()]


def find(target: Network, layers: Sequence[Layer]) -> Report:
    """Everything that blocks `target`. A layer that cannot be read is reported, not fatal."""
    findings: list[Finding] = []
    statuses: list[LayerStatus] = []
    for layer in layers:
        statuses.extend(layer.status())
        findings.extend(layer.find(target))
    return Report(str(target), tuple(findings), tuple(statuses))


def plan(report: Report, layers: Sequence[Layer], *, broad: bool = False) -> Plan:
    """The plan that removes every targeted finding (broad ones too with `broad`). Pure."""
    chosen = [f for f in report.findings if f.targeted or broad]
    skipped = tuple(f for f in report.findings if not (f.targeted or broad))
    batches: list[Batch] = []
    for layer in layers:
        batches.extend(layer.plan([f for f in chosen if f.layer == layer.name]))
    return Plan(report.target, tuple(batches), skipped)


@dataclass(frozen=True)
class Outcome:
    plan: Plan
    applied: tuple[Batch, ...]


class Interrupted(UnbanError):
    """A signal arrived while changes were being applied."""


class _DeferredSignals:
    """Hold SIGTERM/SIGHUP/SIGINT until the running batch ends (never kill a restore midway)."""

    SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)

    def __init__(self) -> None:
        self.received: Optional[int] = None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> _DeferredSignals:
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


def apply(
    plan: Plan,
    layers: Sequence[Layer],
    *,
    on_batch: Callable[[Batch], None] = lambda batch: None,
) -> Outcome:
    """Apply every batch; on a failure or a signal, revert the applied ones newest-first."""
    by_name = {layer.name: layer for layer in layers}
    applied: list[Batch] = []
    with _DeferredSignals() as signals:
        try:
            for batch in plan.batches:
                signals.check()
                by_name[batch.layer].apply(batch)
                applied.append(batch)
                on_batch(batch)
            signals.check()
        except Exception as exc:  # noqa: BLE001 - any failure, even a bug, must roll back
            raise _rolled_back(exc, applied, by_name) from exc
    return Outcome(plan, tuple(applied))


def _rolled_back(cause: Exception, applied: list[Batch], by_name: dict[str, Layer]) -> ApplyError:
    failed_reverts = []
    for batch in reversed(applied):
        try:
            by_name[batch.layer].revert(batch)
        except Exception as exc:  # noqa: BLE001 - keep reverting the rest
            failed_reverts.append(f"{batch.layer} {batch.scope}: {exc}")
    if failed_reverts:
        return ApplyError(
            f"{cause}; putting back the earlier changes failed too: {'; '.join(failed_reverts)}. "
            "Compare with `unban list` and restore by hand with the undo commands above",
            rollback_failed=True,
        )
    undone = f"; the {len(applied)} batch(es) already applied were put back" if applied else ""
    return ApplyError(f"{cause}{undone}; nothing is changed", rollback_failed=False)
