"""The exemptions of one run as batches of the engine's plan, so they roll back with the rest.

`unban me` (and `heal`) append one batch per exemption plan that changes something, after every
layer's batches; `unban ignore` applies the same batches alone. Each batch's payload is its
ExemptionPlan. The batches are journaled (unban.journal) as `by_file`: every file goes through
`ChangeSet.write` and every live change is recorded in the change set (EXEMPTION_KIND, or
fail2ban's IGNORE_KIND) before it is made, so the change set alone puts them back, in this
process after a failure or in a later one (`unban undo`, recovery after a kill).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from unban.address import Network
from unban.errors import UnbanError
from unban.exemptions import EXEMPTION_KIND, Exemption, ExemptionPlan
from unban.model import Batch, Finding, LayerStatus
from unban.reverter import ChangeSet

STAGE = "exemption"  # the batches' layer name


def batches(plans: Sequence[ExemptionPlan]) -> list[Batch]:
    """One batch per plan that changes something."""
    return [Batch(STAGE, p.source, (), (p,), ()) for p in plans if not p.is_empty()]


def any_changes(plans: Sequence[ExemptionPlan]) -> bool:
    """Some exemption plan changes something."""
    return any(not p.is_empty() for p in plans)


def changes(plans: Sequence[ExemptionPlan]) -> int:
    return sum(p.change_count() for p in plans)


class ExemptionStage:
    """A pseudo-layer for engine.apply: applies and reverts exemption batches."""

    name = STAGE

    def __init__(self, change_set: ChangeSet, exemptions: Sequence[Exemption]) -> None:
        self.change_set = change_set
        self.by_name = {e.name: e for e in exemptions}
        self.done: dict[str, list[str]] = {}  # what each source's apply did

    def status(self) -> list[LayerStatus]:
        return []

    def listings(self, query: Any) -> list[Any]:
        return []

    def find(self, target: Network) -> list[Finding]:
        return []

    def plan(self, findings: Sequence[Finding]) -> list[Batch]:
        return []

    def apply(self, batch: Batch) -> None:
        plan: ExemptionPlan = batch.payload[0]
        self.done[plan.source] = self.by_name[plan.source].apply(plan, self.change_set)

    def revert(self, batch: Batch) -> None:
        raise UnbanError(
            f"{batch.scope} exemption: put back through its change set (`unban undo`), not alone"
        )


def plan_text(plans: Sequence[ExemptionPlan]) -> list[str]:
    """The exemption part of `unban me`'s plan: one section per source that changes."""
    from unban.exemptions import plan_lines

    lines = []
    for plan in plans:
        if plan.is_empty():
            continue
        lines.append(f"  [exempt from {plan.source}]")
        lines.extend(f"    {line}" for line in plan_lines(plan))
    return lines


def notes(plans: Sequence[ExemptionPlan]) -> list[str]:
    """Notes of the plans that change nothing (why sshguard is not exempted, ...)."""
    return [f"{p.source}: {note}" for p in plans if p.is_empty() for note in p.notes]


__all__ = ["EXEMPTION_KIND", "STAGE", "ExemptionStage", "batches", "changes", "notes"]
